//! Publishes a price every 100 ms on `PRICES.<SYMBOL>`.
//!
//! ```text
//! cargo run --example publisher -- [--gateway HOST[:PORT]] [--service NAME]
//! ```
//! Watch it with `cargo run --example subscriber` or `mm listen 'PRICES.>'`.

use std::time::Duration;

use messaging_mesh::{Connection, ConnectionParams, Message, Notification};

mod common;
use common::ExampleArgs;

const USAGE: &str = "usage: publisher [--gateway HOST[:PORT]] [--service NAME]\nPublishes a price every 100 ms on `PRICES.<SYMBOL>` until interrupted.\nDefaults: 127.0.0.1:5050, service DEFAULT.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ExampleArgs { gateway, service } = ExampleArgs::parse(USAGE);
    let params = ConnectionParams::new(gateway, service)
        .with_client_name("example-publisher")
        // Losing the gateway is survivable: publishes are buffered and replayed.
        .with_notification_hook(|event: &Notification| eprintln!("publisher: {event}"));
    let connection = Connection::connect(params)?;
    let symbols = ["IBM", "MSFT", "AAPL"];
    for tick in 0u64.. {
        let symbol = symbols[(tick % 3) as usize];
        let price = 100.0 + (tick % 50) as f64 * 0.25;
        let message = Message::new()
            .add_string("sym", symbol)
            .add_f64("px", price)
            .add_u64("seq", tick);
        connection.send(&format!("PRICES.{symbol}"), &message)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
