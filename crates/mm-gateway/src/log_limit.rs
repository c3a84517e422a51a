//! Keeping logs useful when a peer misbehaves at volume (issue #12: 200 000 invalid SUBSCRIBEs
//! wrote 85 MB of warnings in under a second, each echoing a subject of up to a frame's size).
//!
//! * [`WarningBudget`]: the first few warnings of a window are logged, the rest counted and
//!   reported as one summary line when the window ends.
//! * [`shown`] and [`echoed`]: a subject in a log line or an ERROR is cut to
//!   [`SHOWN_SUBJECT_BYTES`], with a marker saying so.

use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Longest subject shown in a log line or echoed in an ERROR header.
pub(crate) const SHOWN_SUBJECT_BYTES: usize = 256;

/// How long a warning budget lasts.
pub(crate) const WARNING_WINDOW: Duration = Duration::from_secs(10);

/// Marker appended to a cut subject.
const CUT_MARKER: &str = "…[cut]";

/// A subject (or any peer-supplied text) for a log line: at most [`SHOWN_SUBJECT_BYTES`] bytes
/// of it, invalid UTF-8 replaced, and a marker with the full length when it was cut.
pub(crate) fn shown(subject: &[u8]) -> Cow<'_, str> {
    if subject.len() <= SHOWN_SUBJECT_BYTES {
        return String::from_utf8_lossy(subject);
    }
    let head = String::from_utf8_lossy(&subject[..SHOWN_SUBJECT_BYTES]);
    Cow::Owned(format!("{head}{CUT_MARKER} ({} bytes)", subject.len()))
}

/// A subject to echo in an ERROR header: unchanged if short, else its first
/// [`SHOWN_SUBJECT_BYTES`] bytes and the marker.
pub(crate) fn echoed(subject: &[u8]) -> Cow<'_, [u8]> {
    if subject.len() <= SHOWN_SUBJECT_BYTES {
        return Cow::Borrowed(subject);
    }
    let mut cut = subject[..SHOWN_SUBJECT_BYTES].to_vec();
    cut.extend_from_slice(CUT_MARKER.as_bytes());
    Cow::Owned(cut)
}

/// Warnings allowed per window, then counted.
#[derive(Debug)]
pub(crate) struct WarningBudget {
    /// Warnings logged per window.
    per_window: u32,
    /// When the current window started.
    window_start: Option<Instant>,
    /// Warnings logged in the current window.
    logged: u32,
    /// Warnings not logged in the current window.
    suppressed: u64,
}

impl WarningBudget {
    /// A budget of `per_window` warnings per [`WARNING_WINDOW`].
    pub(crate) const fn new(per_window: u32) -> WarningBudget {
        WarningBudget {
            per_window,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether a warning may be logged now. If not, it is counted as suppressed.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.duration_since(start) < WARNING_WINDOW => {}
            _ => {
                if self.suppressed == 0 {
                    self.window_start = Some(now);
                    self.logged = 0;
                }
            }
        }
        if self.logged < self.per_window {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Once the window has ended with warnings suppressed: how many (a summary line is due), and
    /// a new window starts.
    pub(crate) fn take_summary(&mut self, now: Instant) -> Option<u64> {
        let start = self.window_start?;
        if self.suppressed == 0 || now.duration_since(start) < WARNING_WINDOW {
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        self.window_start = Some(now);
        self.logged = 0;
        Some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_per_window_then_a_count() {
        let start = Instant::now();
        let mut budget = WarningBudget::new(3);
        let allowed = (0..100).filter(|_| budget.allow(start)).count();
        assert_eq!(allowed, 3);
        assert_eq!(budget.take_summary(start + Duration::from_secs(1)), None);
        let later = start + WARNING_WINDOW;
        assert_eq!(budget.take_summary(later), Some(97));
        assert_eq!(budget.take_summary(later), None);
        assert!(budget.allow(later));
    }

    #[test]
    fn subjects_are_cut_with_a_marker() {
        let long = vec![b'a'; 10_000];
        let shown = shown(&long);
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.ends_with("(10000 bytes)"));
        assert_eq!(echoed(&long).len(), SHOWN_SUBJECT_BYTES + CUT_MARKER.len());
        assert_eq!(echoed(b"A.B"), Cow::Borrowed(&b"A.B"[..]));
        assert_eq!(super::shown(b"\xff.A"), "\u{fffd}.A");
    }
}
