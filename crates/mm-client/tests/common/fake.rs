//! A tiny stand-in gateway speaking raw frames, for behaviour the real gateway does not show:
//! an MM/1 gateway (empty ACK, no PING/PONG, no NO_RESPONDERS), a gateway that goes silent, one
//! that stops reading, and one that delivers frames no real gateway would forward.
//!
//! It routes SEND_MESSAGE frames back to the subscriptions of the connection that sent them
//! (one connection is all these tests need) and records every action it receives.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mm_wire::{
    Action, DEFAULT_MAX_FRAME, FrameDecoder, Header, Message, encode_frame, encode_frame_with_body,
};

/// How the fake behaves.
#[derive(Clone)]
pub struct FakeBehaviour {
    /// The ACK body: empty for MM/1.
    pub ack: Message,
    /// Route SEND_MESSAGE frames to matching subscriptions.
    pub route: bool,
    /// Answer PING with PONG (an MM/2 gateway that is alive).
    pub answer_pings: bool,
    /// Stop reading the first connection right after its ACK (its socket stays open until
    /// [`FakeGateway::drop_connections`]); later connections are served normally.
    pub stall_first: bool,
}

/// The ACK body of an MM/2 gateway.
fn mm2_ack(heartbeat_ms: i32) -> Message {
    Message::new()
        .add_i32("protocol_version", 2)
        .add_string("gateway_name", "fake")
        .add_u32("max_frame", DEFAULT_MAX_FRAME)
        .add_i32("heartbeat_ms", heartbeat_ms)
}

impl FakeBehaviour {
    /// An MM/1 gateway that routes.
    pub fn mm1() -> Self {
        FakeBehaviour {
            ack: Message::new(),
            route: true,
            answer_pings: false,
            stall_first: false,
        }
    }

    /// An MM/2 gateway (no heartbeat of its own) that routes and answers PINGs.
    pub fn mm2() -> Self {
        FakeBehaviour {
            ack: mm2_ack(0),
            route: true,
            answer_pings: true,
            stall_first: false,
        }
    }

    /// An MM/2 gateway announcing `heartbeat_ms` and then saying nothing at all.
    pub fn silent_mm2(heartbeat_ms: i32) -> Self {
        FakeBehaviour {
            ack: mm2_ack(heartbeat_ms),
            route: false,
            answer_pings: false,
            stall_first: false,
        }
    }

    /// [`FakeBehaviour::mm2`] whose first connection stops reading after its ACK.
    pub fn stalling_mm2() -> Self {
        FakeBehaviour {
            stall_first: true,
            ..FakeBehaviour::mm2()
        }
    }
}

/// What the fake saw, shared by its threads.
#[derive(Default)]
struct Seen {
    /// Every action received, in order.
    actions: Mutex<Vec<Action>>,
    /// (subject, reply subject) of the SEND_MESSAGE frames received, in order.
    published: Mutex<Vec<(String, String)>>,
    /// Bytes that were not a frame (the stream cannot be read past them).
    malformed: Mutex<Vec<String>>,
    /// A handle on every connection accepted and not dropped.
    connections: Mutex<Vec<TcpStream>>,
}

/// A running fake gateway; its threads end with the process.
pub struct FakeGateway {
    address: SocketAddr,
    seen: Arc<Seen>,
}

impl FakeGateway {
    /// Listens on an ephemeral port.
    pub fn start(behaviour: FakeBehaviour) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                if let Ok(handle) = stream.try_clone() {
                    shared.connections.lock().unwrap().push(handle);
                }
                let stall = behaviour.stall_first && index == 0;
                let behaviour = behaviour.clone();
                let seen = shared.clone();
                std::thread::spawn(move || serve(stream, &behaviour, stall, &seen));
            }
        });
        FakeGateway { address, seen }
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Every action received so far, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.seen.actions.lock().unwrap().clone()
    }

    /// Subjects of the messages published to the fake so far, in order.
    pub fn published(&self) -> Vec<String> {
        let published = self.seen.published.lock().unwrap();
        published
            .iter()
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// The reply subject of the first message published on `subject`, if one arrived.
    pub fn reply_subject_of(&self, subject: &str) -> Option<String> {
        let published = self.seen.published.lock().unwrap();
        published
            .iter()
            .find(|(published, _)| published == subject)
            .map(|(_, reply)| reply.clone())
    }

    /// What was wrong with bytes that were not frames (empty: every byte was a frame).
    pub fn malformed(&self) -> Vec<String> {
        self.seen.malformed.lock().unwrap().clone()
    }

    /// Writes raw bytes to every open connection, as if the gateway delivered them.
    pub fn deliver(&self, bytes: &[u8]) {
        for mut connection in self.seen.connections.lock().unwrap().iter() {
            connection.write_all(bytes).unwrap();
        }
    }

    /// Closes every connection accepted so far, as a gateway that dies.
    pub fn drop_connections(&self) {
        for connection in self.seen.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

fn serve(mut stream: TcpStream, behaviour: &FakeBehaviour, stall: bool, seen: &Seen) {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut subscriptions: Vec<(u32, String)> = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        decoder.feed(&buffer[..read]);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    seen.malformed.lock().unwrap().push(error.to_string());
                    return;
                }
            };
            let Some(action) = frame.action() else {
                continue;
            };
            seen.actions.lock().unwrap().push(action);
            match action {
                Action::Connect => {
                    let mut ack = Vec::new();
                    encode_frame(&mut ack, &Header::new(Action::Ack), &behaviour.ack).unwrap();
                    if stream.write_all(&ack).is_err() || stall {
                        // Stalled: the socket stays open (its handle is kept) but is never read.
                        return;
                    }
                }
                Action::Ping if behaviour.answer_pings => {
                    let mut pong = Vec::new();
                    encode_frame_with_body(&mut pong, &Header::new(Action::Pong), &frame.body())
                        .unwrap();
                    if stream.write_all(&pong).is_err() {
                        return;
                    }
                }
                Action::Subscribe => subscriptions.push((
                    frame.subscription_id(),
                    String::from_utf8_lossy(frame.subject()).into_owned(),
                )),
                Action::Unsubscribe => {
                    subscriptions.retain(|(id, _)| *id != frame.subscription_id());
                }
                Action::SendMessage => {
                    let subject = String::from_utf8_lossy(frame.subject()).into_owned();
                    let reply = String::from_utf8_lossy(frame.reply_subject()).into_owned();
                    seen.published
                        .lock()
                        .unwrap()
                        .push((subject.clone(), reply));
                    if !behaviour.route {
                        continue;
                    }
                    for (id, pattern) in &subscriptions {
                        if mm_wire::subject::matches(pattern, &subject) {
                            let mut copy = frame.as_bytes().to_vec();
                            mm_wire::patch_subscription_id(&mut copy, *id);
                            if stream.write_all(&copy).is_err() {
                                return;
                            }
                        }
                    }
                }
                Action::Disconnect => return,
                _ => {}
            }
        }
    }
}
