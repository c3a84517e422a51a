//! How received messages are printed: tibrvlisten-style text, or one JSON object per line.
//!
//! Text: `2024-05-01 12:00:00.123Z subject=PRICES.IBM reply=_INBOX.x.1 message={` then one
//! field per line with its type, nested messages indented by four spaces, and `}`. An empty
//! message prints as `message={}` on the same line. The `reply=` part is left out when there is
//! no reply subject.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use messaging_mesh::{Message, Received};

/// Output format of commands that print messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Prints one received message.
pub fn print_received(
    out: &mut impl Write,
    format: Format,
    received: &Received,
) -> std::io::Result<()> {
    let time = utc_timestamp(SystemTime::now());
    match format {
        Format::Text => {
            write!(out, "{time} subject={}", received.subject())?;
            if let Some(reply) = received.reply_subject() {
                write!(out, " reply={reply}")?;
            }
            writeln!(out, " message={}", text(received.message()))
        }
        Format::Json => {
            let mut line = String::with_capacity(128);
            line.push_str("{\"time\":");
            crate::json::write_string(&mut line, &time);
            line.push_str(",\"subject\":");
            crate::json::write_string(&mut line, received.subject());
            line.push_str(",\"reply\":");
            match received.reply_subject() {
                Some(reply) => crate::json::write_string(&mut line, reply),
                None => line.push_str("null"),
            }
            line.push_str(",\"message\":");
            crate::json::write_message(&mut line, received.message());
            line.push('}');
            writeln!(out, "{line}")
        }
    }
}

/// A message as text: typed fields, one per line, nested messages indented.
pub fn text(message: &Message) -> String {
    format!("{:#}", message.render().with_types(true))
}

/// `YYYY-MM-DD HH:MM:SS.mmmZ` in UTC.
pub fn utc_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_709_251_199_999);
        assert_eq!(utc_timestamp(time), "2024-02-29 23:59:59.999Z");
        let time = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(time), "2000-02-29 00:00:00.000Z");
    }

    #[test]
    fn nested_text_is_indented_with_types() {
        let message = Message::new()
            .add_string("sym", "IBM")
            .add_message("meta", Message::new().add_u32("seq", 7));
        assert_eq!(
            text(&message),
            "{\n    sym:str=\"IBM\"\n    meta:msg={\n        seq:u32=7\n    }\n}"
        );
        assert_eq!(text(&Message::new()), "{}");
    }
}
