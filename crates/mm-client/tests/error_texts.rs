//! The error-text table in docs/protocol.md ("Error texts"), row by row: each mistake is made
//! with this library and must give exactly the text in the table. The C# tests read the same
//! table, so both languages say the same thing for the same mistake.

mod common;

use std::time::Duration;

use common::{PATIENCE, SERVICE, connect};
use messaging_mesh::{Connection, ConnectionParams, Message};
use mm_testkit::GatewayProcess;

/// One row: operation, input, expected text.
struct Row {
    operation: String,
    input: String,
    text: String,
}

/// The rows between the table's markers.
fn table() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let document = std::fs::read_to_string(path).expect("docs/protocol.md");
    let begin = document
        .find("<!-- error-texts:begin -->")
        .expect("the table's begin marker");
    let end = document
        .find("<!-- error-texts:end -->")
        .expect("the table's end marker");
    document[begin..end]
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a row has four cells: {line}");
            Row {
                operation: cells[1].to_owned(),
                input: cells[2].trim_matches('`').to_owned(),
                text: cells[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_mistake_in_the_table_gets_its_text() {
    let rows = table();
    assert!(rows.len() >= 10, "the table has its rows");
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    // A subscriber that never answers, for the timeout row.
    let silent = connect(&gateway);
    let _silent = silent.subscribe("Silent.service", |_| {}).unwrap();
    silent.flush(PATIENCE).unwrap();
    let fields = Message::new().add_i32("qty", 1);
    for row in rows {
        let input = row.input.as_str();
        let text = match row.operation.as_str() {
            "publish" => connection
                .send(input, &Message::new())
                .unwrap_err()
                .to_string(),
            "publish with reply subject" => connection
                .send_with_reply("A", input, &Message::new())
                .unwrap_err()
                .to_string(),
            "subscribe" => connection.subscribe(input, |_| {}).unwrap_err().to_string(),
            "connect" => {
                Connection::connect(ConnectionParams::new(gateway.address_string(), input))
                    .unwrap_err()
                    .to_string()
            }
            "get int64 field" => fields.get_i64(input).unwrap_err().to_string(),
            "request" => connection
                .send_request(input, &Message::new(), PATIENCE)
                .unwrap_err()
                .to_string(),
            "request, 200 ms" => connection
                .send_request(input, &Message::new(), Duration::from_millis(200))
                .unwrap_err()
                .to_string(),
            "publish after close" => {
                let closed = connect(&gateway);
                closed.close();
                closed.send(input, &Message::new()).unwrap_err().to_string()
            }
            other => panic!("the table has an operation this test does not know: {other}"),
        };
        assert_eq!(text, row.text, "{} `{input}`", row.operation);
    }
    // The service the connections used is the test's own.
    assert_eq!(connection.service(), SERVICE);
}
