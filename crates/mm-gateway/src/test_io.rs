//! Test plumbing below any service: a current-thread runtime with a `LocalSet`, loopback socket
//! pairs, encoded frames. Tests of parts that know nothing of services (the router) use it
//! directly; the service harness builds on it.

use std::future::Future;

use mm_wire::{Header, Message, encode_frame};
use tokio::net::{TcpListener, TcpStream};

/// Runs `test` on a current-thread runtime inside a `LocalSet`.
pub(crate) fn run<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, test);
}

/// A connected loopback pair: (the gateway's end, the test's end). Must be called inside a
/// runtime.
pub(crate) async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    let test_end = connected.expect("connect");
    let (gateway_end, _) = accepted.expect("accept");
    gateway_end.set_nodelay(true).expect("nodelay");
    test_end.set_nodelay(true).expect("nodelay");
    (gateway_end, test_end)
}

/// One encoded frame.
pub(crate) fn frame(header: &Header<'_>, message: &Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, header, message).expect("encode");
    bytes
}
