//! Prints every message on `PRICES.>` for 60 seconds.
//!
//! ```text
//! cargo run --example subscriber -- [--gateway HOST[:PORT]] [--service NAME]
//! ```

use std::time::Duration;

use messaging_mesh::{Connection, ConnectionParams, Received};

mod common;
use common::ExampleArgs;

const USAGE: &str = "usage: subscriber [--gateway HOST[:PORT]] [--service NAME]\nPrints every message on `PRICES.>` for 60 seconds.\nDefaults: 127.0.0.1:5050, service DEFAULT.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ExampleArgs { gateway, service } = ExampleArgs::parse(USAGE);
    let connection = Connection::connect(
        ConnectionParams::new(gateway, service).with_client_name("example-subscriber"),
    )?;
    // The callback runs on the library's dispatch thread. Keep the Subscription: dropping it
    // unsubscribes.
    let _prices = connection.subscribe("PRICES.>", |message: &Received| {
        println!("{} {}", message.subject(), message.message());
    })?;
    // After a flush the gateway has the subscription: nothing published from now on is missed.
    connection.flush(Duration::from_secs(5))?;
    eprintln!("subscriber: listening on PRICES.>");
    std::thread::sleep(Duration::from_secs(60));
    connection.close();
    Ok(())
}
