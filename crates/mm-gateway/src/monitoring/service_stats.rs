//! The statistics contract of the first implementation (SPEC §11): every 2 s each service
//! publishes, on service `_COORDINATOR`, subject `GATEWAY.STATS.<gateway>.<service>`, a message
//! with one STRING field `SERVICE_STATS` holding JSON about the messages its local clients
//! published in the window.
//!
//! Built from the same window as the top subjects (`crate::subject_tally`), so it costs nothing
//! more on the routing path.

use mm_wire::Message;
use mm_wire::subject::validate_subject;
use serde::Serialize;

use crate::subject_tally::{RankedSubject, SubjectCount, TallyWindow};

/// The service the statistics are published on.
pub const COORDINATOR_SERVICE: &str = "_COORDINATOR";

/// The message's only field.
pub const SERVICE_STATS_FIELD: &str = "SERVICE_STATS";

/// Subjects in each top list (SPEC §11).
pub const TOP_LISTED: usize = 15;

/// The `Subject` of the `Total` object (our choice: the pattern every subject matches).
pub const TOTAL_SUBJECT: &str = ">";

/// The subject for `service` of gateway `gateway_name`: the gateway name made one token (dots and
/// white space replaced by `-`). `None` if the result is not a valid subject.
pub(crate) fn stats_subject(gateway_name: &str, service: &str) -> Option<String> {
    let gateway: String = gateway_name
        .chars()
        .map(|c| {
            if c == '.' || c.is_whitespace() {
                '-'
            } else {
                c
            }
        })
        .collect();
    let subject = format!("GATEWAY.STATS.{gateway}.{service}");
    validate_subject(&subject).ok().map(|_| subject)
}

/// One stats object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubjectStats<'a> {
    subject: &'a str,
    messages_processed: u64,
    bytes_processed: u64,
    messages_per_second: f64,
    mega_bits_per_second: f64,
}

/// The `SERVICE_STATS` JSON.
#[derive(Debug, Serialize)]
struct ServiceStats<'a> {
    #[serde(rename = "ServiceName")]
    service_name: &'a str,
    #[serde(rename = "GatewayName")]
    gateway_name: &'a str,
    #[serde(rename = "DurationSeconds")]
    duration_seconds: f64,
    #[serde(rename = "Total")]
    total: SubjectStats<'a>,
    #[serde(rename = "TopSubjects_MessagesPerSecond")]
    top_by_messages: Vec<SubjectStats<'a>>,
    #[serde(rename = "TopSubjects_MegaBitsPerSecond")]
    top_by_megabits: Vec<SubjectStats<'a>>,
}

fn subject_stats<'a>(subject: &'a str, count: SubjectCount, seconds: f64) -> SubjectStats<'a> {
    let (messages_per_second, mega_bits_per_second) = if seconds > 0.0 {
        (
            count.messages as f64 / seconds,
            count.bytes as f64 * 8.0 / 1_048_576.0 / seconds,
        )
    } else {
        (0.0, 0.0)
    };
    SubjectStats {
        subject,
        messages_processed: count.messages,
        bytes_processed: count.bytes,
        messages_per_second,
        mega_bits_per_second,
    }
}

/// The `SERVICE_STATS` JSON for one window of `seconds`.
pub(crate) fn service_stats_json(
    service: &str,
    gateway_name: &str,
    window: &TallyWindow,
    seconds: f64,
) -> String {
    fn listed(list: &[RankedSubject], seconds: f64) -> Vec<SubjectStats<'_>> {
        list.iter()
            .take(TOP_LISTED)
            .map(|entry| subject_stats(&entry.subject, entry.count, seconds))
            .collect()
    }
    let stats = ServiceStats {
        service_name: service,
        gateway_name,
        duration_seconds: seconds,
        total: subject_stats(TOTAL_SUBJECT, window.total, seconds),
        top_by_messages: listed(&window.by_messages, seconds),
        top_by_megabits: listed(&window.by_bytes, seconds),
    };
    serde_json::to_string(&stats).unwrap_or_default()
}

/// The message published on `_COORDINATOR`.
pub(crate) fn service_stats_message(json: &str) -> Message {
    Message::new().add_string(SERVICE_STATS_FIELD, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_makes_the_gateway_name_one_token() {
        assert_eq!(
            stats_subject("host-a.example.com", "VULCAN").as_deref(),
            Some("GATEWAY.STATS.host-a-example-com.VULCAN")
        );
        assert_eq!(
            stats_subject("my gateway", "S").as_deref(),
            Some("GATEWAY.STATS.my-gateway.S")
        );
        assert_eq!(stats_subject("*", "S"), None);
    }

    #[test]
    fn json_has_the_contract_fields() {
        let count = |messages, bytes| SubjectCount { messages, bytes };
        let window = TallyWindow {
            total: count(300, 1_048_576),
            by_messages: (0..20)
                .map(|n| RankedSubject {
                    subject: format!("S.{n}"),
                    count: count(20 - n, 1000),
                })
                .collect(),
            by_bytes: vec![RankedSubject {
                subject: "BIG".into(),
                count: count(1, 524_288),
            }],
            subjects: 21,
            pruned: 0,
        };
        let json = service_stats_json("VULCAN", "gw-a", &window, 2.0);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["ServiceName"], "VULCAN");
        assert_eq!(value["GatewayName"], "gw-a");
        assert_eq!(value["DurationSeconds"], 2.0);
        assert_eq!(value["Total"]["Subject"], ">");
        assert_eq!(value["Total"]["MessagesProcessed"], 300);
        assert_eq!(value["Total"]["BytesProcessed"], 1_048_576);
        assert_eq!(value["Total"]["MessagesPerSecond"], 150.0);
        // 1 MiB in 2 s = 4 megabits per second.
        assert_eq!(value["Total"]["MegaBitsPerSecond"], 4.0);
        let top = value["TopSubjects_MessagesPerSecond"].as_array().unwrap();
        assert_eq!(top.len(), TOP_LISTED);
        assert_eq!(top[0]["Subject"], "S.0");
        assert_eq!(top[0]["MessagesPerSecond"], 10.0);
        let by_bits = value["TopSubjects_MegaBitsPerSecond"].as_array().unwrap();
        assert_eq!(by_bits[0]["Subject"], "BIG");
        assert_eq!(by_bits[0]["MegaBitsPerSecond"], 2.0);
    }
}
