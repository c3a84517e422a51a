//! Sends requests to `Service.Add` and prints the answers; tells a timeout from "nobody there".
//!
//! ```text
//! cargo run --example requester -- [--gateway HOST[:PORT]] [--service NAME]
//! ```

use std::time::Duration;

use messaging_mesh::{Connection, ConnectionParams, Message, RequestError};

mod common;
use common::ExampleArgs;

const USAGE: &str = "usage: requester [--gateway HOST[:PORT]] [--service NAME]\nSends five requests to `Service.Add` and prints the answers.\nDefaults: 127.0.0.1:5050, service DEFAULT.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ExampleArgs { gateway, service } = ExampleArgs::parse(USAGE);
    let connection = Connection::connect(
        ConnectionParams::new(gateway, service).with_client_name("example-requester"),
    )?;
    for n in 0..5 {
        let request = Message::new().add_f64("A", f64::from(n)).add_f64("B", 0.5);
        match connection.send_request("Service.Add", &request, Duration::from_secs(2)) {
            Ok(reply) => println!("{n} + 0.5 = {}", reply.message().get_f64("sum")?),
            Err(RequestError::NoResponders { .. }) => {
                println!("nobody answers Service.Add: start the responder example");
                break;
            }
            Err(RequestError::Timeout { .. }) => println!("no answer within 2 s"),
            Err(other) => return Err(other.into()),
        }
    }
    connection.close();
    Ok(())
}
