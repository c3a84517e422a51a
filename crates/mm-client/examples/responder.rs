//! Answers requests on `Service.Add` with the sum of the fields `A` and `B`.
//!
//! ```text
//! cargo run --example responder -- [--gateway HOST[:PORT]] [--service NAME]
//! ```
//! Try it with `cargo run --example requester` or `mm request Service.Add A=1.5 B=2`.

use messaging_mesh::{Connection, ConnectionParams, DispatchMode, Message};

mod common;
use common::ExampleArgs;

const USAGE: &str = "usage: responder [--gateway HOST[:PORT]] [--service NAME]\nAnswers requests on `Service.Add` with the sum of `A` and `B`, until interrupted.\nDefaults: 127.0.0.1:5050, service DEFAULT.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ExampleArgs { gateway, service } = ExampleArgs::parse(USAGE);
    // Queue mode: this thread runs the callbacks, in process_message_queue.
    let connection = Connection::connect(
        ConnectionParams::new(gateway, service)
            .with_client_name("example-responder")
            .with_dispatch_mode(DispatchMode::Queue),
    )?;
    let responder = connection.clone();
    let _service = connection.subscribe("Service.Add", move |request| {
        let body = request.message();
        let a = body
            .try_f64("A")
            .or(body.try_i32("A").map(f64::from))
            .unwrap_or(0.0);
        let b = body
            .try_f64("B")
            .or(body.try_i32("B").map(f64::from))
            .unwrap_or(0.0);
        if let Err(error) = responder.send_reply(request, &Message::new().add_f64("sum", a + b)) {
            eprintln!("responder: cannot reply: {error}");
        }
    })?;
    connection.flush(std::time::Duration::from_secs(5))?;
    eprintln!("responder: answering Service.Add");
    loop {
        connection.process_message_queue(std::time::Duration::from_secs(1), 0)?;
    }
}
