//! Raw connections for abuse: frames built by hand, connections opened with deadlines, and the
//! answers a gateway gives to them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mm_testkit::{RawClient, Received, wait_until_every};
use mm_wire::handshake::ConnectOptions;
use mm_wire::{Action, Frame, Header, Message, encode_frame};

/// Appends one frame to `bytes`.
pub(crate) fn push_frame(bytes: &mut Vec<u8>, header: &Header<'_>, message: &Message) {
    encode_frame(bytes, header, message).expect("encode");
}

/// Appends a SUBSCRIBE.
pub(crate) fn push_subscribe(bytes: &mut Vec<u8>, id: u32, pattern: &str) {
    push_frame(
        bytes,
        &Header::new(Action::Subscribe)
            .with_subscription_id(id)
            .with_subject(pattern),
        &Message::new(),
    );
}

/// Appends a SEND_MESSAGE.
pub(crate) fn push_publish(bytes: &mut Vec<u8>, subject: &str, reply: &str, message: &Message) {
    push_frame(
        bytes,
        &Header::send_message(subject).with_reply_subject(reply),
        message,
    );
}

/// A CONNECT frame for `service`: MM/2 options, or the empty body of MM/1.
pub(crate) fn connect_bytes(service: &str, mm2: bool) -> Vec<u8> {
    let body = if mm2 {
        ConnectOptions::mm2("abuse").to_message()
    } else {
        Message::new()
    };
    let mut bytes = Vec::new();
    push_frame(
        &mut bytes,
        &Header::new(Action::Connect)
            .with_subject(service)
            .with_reply_subject("abuser"),
        &body,
    );
    bytes
}

/// The `code` of an ERROR frame (None for other frames).
pub(crate) fn error_code(frame: &Frame) -> Option<String> {
    (frame.action() == Some(Action::Error))
        .then(|| frame.message().ok())
        .flatten()
        .and_then(|message| message.try_string("code").map(str::to_owned))
}

/// Idle MM/2 clients of `service`, CONNECTs pipelined (no waiting per client).
pub(crate) fn open_idle_clients(
    address: SocketAddr,
    service: &str,
    count: usize,
) -> Vec<TcpStream> {
    let connect = connect_bytes(service, true);
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(address).expect("connect an idle client");
            stream.write_all(&connect).expect("send CONNECT");
            stream
        })
        .collect()
}

/// Raises this process's soft limit on open files to its hard limit; panics if that is below
/// `needed`.
pub(crate) fn raise_open_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "open file limit {} is below the {needed} this scenario needs",
        limit.rlim_cur
    );
}

/// A `_MM.STATS` answer's counter (`u64` or `u32`; 0 if absent).
pub(crate) fn stat(stats: &Option<Message>, field: &str) -> u64 {
    stats
        .as_ref()
        .and_then(|stats| {
            stats
                .try_u64(field)
                .or_else(|| stats.try_u32(field).map(u64::from))
        })
        .unwrap_or(0)
}

/// A `_MM.STATS` answer computed after this call began. The gateway may answer from a copy up to
/// a second old, so this asks until `uptime_ms` has moved on by more than a second from the first
/// answer's (which was computed at most a second before the call).
pub(crate) fn fresh_stats(client: &mut RawClient) -> Option<Message> {
    let first = client.try_stats(0xab70, Duration::from_secs(30))?;
    let since = first.try_u64("uptime_ms")?;
    let mut answer = None;
    wait_until_every(Duration::from_secs(30), Duration::from_millis(300), || {
        answer = client.try_stats(0xab71, Duration::from_secs(30));
        answer
            .as_ref()
            .and_then(|answer| answer.try_u64("uptime_ms"))
            .is_some_and(|uptime| uptime >= since + 1_100)
    });
    answer
}

/// MM/1 flush: publish to a subject only this client subscribes to and wait for it to come back.
pub(crate) fn mm1_flush(client: &mut RawClient, inbox: &str, timeout: Duration) -> bool {
    client.publish(inbox, "", &Message::new());
    let deadline = Instant::now() + timeout;
    loop {
        match client.recv_event(deadline.saturating_duration_since(Instant::now())) {
            Received::Frame(frame) if frame.subject() == inbox.as_bytes() => return true,
            Received::Frame(_) => {}
            Received::Timeout | Received::Closed => return false,
        }
    }
}

/// What became of a CONNECT to a made-up service.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServiceAnswer {
    Accepted,
    Refused,
    Other(String),
}

/// A CONNECT to `service`, with a deadline on everything; the connection stays open.
pub(crate) fn connect_to_service(
    address: SocketAddr,
    service: &str,
) -> (Option<RawLink>, ServiceAnswer) {
    let timeout = Duration::from_secs(5);
    let Some(stream) = open_with_timeout(address, &connect_bytes(service, true), timeout) else {
        return (None, ServiceAnswer::Other("cannot connect".into()));
    };
    let mut link = RawLink {
        stream,
        decoder: mm_wire::FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME),
    };
    let answer = match link.next(timeout) {
        Some(frame) if frame.action() == Some(Action::Ack) => ServiceAnswer::Accepted,
        Some(frame) if error_code(&frame).as_deref() == Some("SERVICE_REFUSED") => {
            // Then the connection closes.
            if closed_within(&mut link.stream, timeout) {
                ServiceAnswer::Refused
            } else {
                ServiceAnswer::Other("SERVICE_REFUSED but not closed".into())
            }
        }
        Some(frame) => ServiceAnswer::Other(format!("{frame:?}")),
        None => ServiceAnswer::Other("no answer".into()),
    };
    (Some(link), answer)
}

/// Sends DISCONNECT (best effort).
pub(crate) fn disconnect(link: &mut RawLink) {
    let mut bytes = Vec::new();
    push_frame(
        &mut bytes,
        &Header::new(Action::Disconnect),
        &Message::new(),
    );
    let _ = link.stream.write_all(&bytes);
}

/// Connects with a deadline (a full accept queue drops SYNs: a plain connect would wait for
/// minutes) and sends CONNECT.
pub(crate) fn open_with_timeout(
    address: SocketAddr,
    connect: &[u8],
    timeout: Duration,
) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.write_all(connect).ok()?;
    Some(stream)
}

/// Writes `bytes`; false if the gateway closed the connection.
pub(crate) fn write_or_closed(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    stream.write_all(bytes).is_ok()
}

/// Whether the gateway has closed `stream` (reads EOF or an error within `timeout`).
pub(crate) fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 4096];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(remaining.max(Duration::from_millis(1))));
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}

/// Reads frames from a raw socket (the fake peer's accepted side).
pub(crate) struct RawLink {
    pub(crate) stream: TcpStream,
    pub(crate) decoder: mm_wire::FrameDecoder,
}

impl RawLink {
    pub(crate) fn next(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(Some(frame)) = self.decoder.next_frame() {
                return Some(frame);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            let _ = self
                .stream
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))));
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(read) => self.decoder.feed(&chunk[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }
}
