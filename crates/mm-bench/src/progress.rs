//! A one-line progress display on stderr for long runs.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::workload::Amount;

/// Progress of a run: messages sent, and (once publishing is done) received.
pub struct Progress {
    enabled: bool,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts a display thread if `enabled`.
    pub fn new(enabled: bool, amount: Amount, publishers: usize) -> Progress {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let sent = sent.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let done = sent.load(Ordering::Relaxed);
                    let line = match amount {
                        Amount::Count(count) => {
                            let total = count * publishers as u64;
                            let percent = done as f64 * 100.0 / total.max(1) as f64;
                            let filled = (percent / 5.0) as usize;
                            format!(
                                "[{}{}] {percent:5.1}%  {done}/{total} sent",
                                "#".repeat(filled.min(20)),
                                " ".repeat(20 - filled.min(20))
                            )
                        }
                        Amount::Duration(duration) => format!(
                            "{:.1}/{:.0} s  {done} sent",
                            started.elapsed().as_secs_f64(),
                            duration.as_secs_f64()
                        ),
                    };
                    eprint!("\r{line}   ");
                    let _ = std::io::stderr().flush();
                }
            })
        });
        Progress {
            enabled,
            sent,
            stop,
            thread,
        }
    }

    /// The counter publishers add to.
    pub fn sent_counter(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// Stops the display and clears the line.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if self.enabled {
            eprint!("\r{}\r", " ".repeat(60));
        }
    }
}
