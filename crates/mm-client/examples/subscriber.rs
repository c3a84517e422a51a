//! Prints every message on `PRICES.>` for 60 seconds.
//!
//! ```text
//! cargo run --example subscriber -- [HOST:PORT] [SERVICE]
//! ```

use std::time::Duration;

use messaging_mesh::{Connection, ConnectionParams, Received};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let gateway = args.next().unwrap_or_else(|| "127.0.0.1:5050".to_owned());
    let service = args.next().unwrap_or_else(|| "DEFAULT".to_owned());
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
