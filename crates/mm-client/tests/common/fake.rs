//! A tiny stand-in gateway speaking raw frames, for behaviour the real gateway does not show:
//! an MM/1 gateway (empty ACK, no PING/PONG, no NO_RESPONDERS) and a gateway that goes silent.
//!
//! It routes SEND_MESSAGE frames back to the subscriptions of the connection that sent them
//! (one connection is all these tests need) and records every action it receives.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mm_wire::{Action, DEFAULT_MAX_FRAME, FrameDecoder, Header, Message, encode_frame};

/// How the fake behaves.
#[derive(Clone)]
pub struct FakeBehaviour {
    /// The ACK body: empty for MM/1.
    pub ack: Message,
    /// Route SEND_MESSAGE frames to matching subscriptions.
    pub route: bool,
}

impl FakeBehaviour {
    /// An MM/1 gateway that routes.
    pub fn mm1() -> Self {
        FakeBehaviour {
            ack: Message::new(),
            route: true,
        }
    }

    /// An MM/2 gateway announcing `heartbeat_ms` and then saying nothing at all.
    pub fn silent_mm2(heartbeat_ms: i32) -> Self {
        FakeBehaviour {
            ack: Message::new()
                .add_i32("protocol_version", 2)
                .add_string("gateway_name", "fake")
                .add_u32("max_frame", DEFAULT_MAX_FRAME)
                .add_i32("heartbeat_ms", heartbeat_ms),
            route: false,
        }
    }
}

/// A running fake gateway; its threads end with the process.
pub struct FakeGateway {
    address: SocketAddr,
    actions: Arc<Mutex<Vec<Action>>>,
}

impl FakeGateway {
    /// Listens on an ephemeral port.
    pub fn start(behaviour: FakeBehaviour) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let recorded = actions.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let behaviour = behaviour.clone();
                let recorded = recorded.clone();
                std::thread::spawn(move || serve(stream, behaviour, recorded));
            }
        });
        FakeGateway { address, actions }
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Every action received so far, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.actions.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, behaviour: FakeBehaviour, actions: Arc<Mutex<Vec<Action>>>) {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut subscriptions: Vec<(u32, String)> = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        decoder.feed(&buffer[..read]);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let Some(action) = frame.action() else {
                continue;
            };
            actions.lock().unwrap().push(action);
            match action {
                Action::Connect => {
                    let mut ack = Vec::new();
                    encode_frame(&mut ack, &Header::new(Action::Ack), &behaviour.ack).unwrap();
                    if stream.write_all(&ack).is_err() {
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
                Action::SendMessage if behaviour.route => {
                    let subject = String::from_utf8_lossy(frame.subject()).into_owned();
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
