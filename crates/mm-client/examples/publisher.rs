//! Publishes a price every 100 ms on `PRICES.<SYMBOL>`.
//!
//! ```text
//! cargo run --example publisher -- [HOST:PORT] [SERVICE]
//! ```
//! Watch it with `cargo run --example subscriber` or `mm listen 'PRICES.>'`.

use std::time::Duration;

use messaging_mesh::{Connection, ConnectionParams, Message, Notification};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let gateway = args.next().unwrap_or_else(|| "127.0.0.1:5050".to_owned());
    let service = args.next().unwrap_or_else(|| "DEFAULT".to_owned());
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
