//! Helpers shared by the end-to-end tests: connecting to a real gateway, recording
//! notifications, and collecting delivered messages with a deadline.

#![allow(dead_code)]

pub mod fake;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messaging_mesh::{Connection, ConnectionParams, Notification, Received};
use mm_testkit::GatewayProcess;

/// The service every test uses.
pub const SERVICE: &str = "TEST";

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Parameters for `gateway` with a short connect timeout.
pub fn params(gateway: &GatewayProcess) -> ConnectionParams {
    ConnectionParams::new(gateway.address_string(), SERVICE)
        .with_client_name("test")
        .with_connect_timeout(Duration::from_secs(5))
}

/// A connection to `gateway` with default options.
pub fn connect(gateway: &GatewayProcess) -> Connection {
    Connection::connect(params(gateway)).expect("connect to the gateway")
}

/// Every notification a connection produced, in order.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Notification>>>,
}

impl Recorder {
    /// Adds this recorder as the notification hook.
    pub fn install(&self, params: ConnectionParams) -> ConnectionParams {
        let events = self.events.clone();
        params.with_notification_hook(move |event| events.lock().unwrap().push(event.clone()))
    }

    /// A copy of the notifications so far.
    pub fn events(&self) -> Vec<Notification> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until a notification matches `predicate`; returns it.
    pub fn wait_for(
        &self,
        what: &str,
        mut predicate: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let mut found = None;
        mm_testkit::wait_until(PATIENCE, || {
            found = self.events().into_iter().find(|event| predicate(event));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {what} notification; got {:#?}", self.events()))
    }

    /// How many notifications match `predicate`.
    pub fn count(&self, predicate: impl Fn(&Notification) -> bool) -> usize {
        self.events()
            .iter()
            .filter(|event| predicate(event))
            .count()
    }
}

/// A callback that forwards every message into a channel, and the receiving end.
pub fn collector() -> (impl FnMut(&Received) + Send + 'static, Receiver<Received>) {
    let (sender, receiver): (Sender<Received>, Receiver<Received>) = channel();
    (
        move |message: &Received| {
            let _ = sender.send(message.clone());
        },
        receiver,
    )
}

/// The next message, which must arrive within [`PATIENCE`].
pub fn expect(receiver: &Receiver<Received>) -> Received {
    receiver
        .recv_timeout(PATIENCE)
        .expect("a message within the patience timeout")
}

/// Receives exactly `count` messages within [`PATIENCE`].
pub fn expect_many(receiver: &Receiver<Received>, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + PATIENCE;
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(message) => messages.push(message),
            Err(_) => panic!("received {} of {count} messages", messages.len()),
        }
    }
    messages
}
