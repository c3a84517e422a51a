//! What a running process costs, read from `/proc`: resident memory (now and its peak), data
//! segment size, threads, open descriptors; how long threads waited for a CPU; and a guard that
//! kills a process whose memory runs away, so an abuse scenario can never take the machine down
//! with it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading of `/proc/PID/status`. Sizes in KiB; zero when the process is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStatus {
    /// Resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size since start or since [`reset_peak_rss`] (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Private data segments (`VmData`): heap and anonymous mappings, touched or not.
    pub data_kib: u64,
    /// Threads (`Threads`).
    pub threads: u64,
    /// Whether the process is alive: it exists and is not a zombie (`State`).
    pub alive: bool,
}

impl ProcessStatus {
    /// Reads the status of `pid`; all zero if it cannot be read.
    pub fn read(pid: u32) -> ProcessStatus {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        ProcessStatus {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            data_kib: field("VmData:"),
            threads: field("Threads:"),
            alive: text
                .lines()
                .find_map(|line| line.strip_prefix("State:"))
                .is_some_and(|state| !matches!(state.trim_start().chars().next(), Some('Z' | 'X'))),
        }
    }
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`); 0 if it cannot be read.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count() as u64)
}

/// Resets the peak resident size (`VmHWM`) of `pid` to its current resident size, so the next
/// [`ProcessStatus::read`] reports the peak of what follows. False if the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples a process's resident size in the background; SIGKILLs it if the size passes a cap.
/// The peak it saw is a lower bound of the true peak (`VmHWM` is exact when it can be reset).
pub struct MemoryGuard {
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// What a [`MemoryGuard`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardReport {
    /// Largest resident size sampled, KiB.
    pub peak_sampled_kib: u64,
    /// Whether the guard killed the process at its cap.
    pub killed_at_cap: bool,
}

impl MemoryGuard {
    /// Watches `pid` every `interval`; kills it with SIGKILL when its resident size exceeds
    /// `cap_kib`.
    pub fn start(pid: u32, cap_kib: u64, interval: Duration) -> MemoryGuard {
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, killed, peak_kib) = (stop.clone(), killed.clone(), peak_kib.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = ProcessStatus::read(pid).rss_kib;
                    peak_kib.fetch_max(rss, Ordering::Relaxed);
                    if rss > cap_kib && !killed.swap(true, Ordering::Relaxed) {
                        // SAFETY: `kill` on a pid with a valid signal number has no memory
                        // effects in this process.
                        unsafe {
                            libc::kill(pid as i32, libc::SIGKILL);
                        }
                    }
                    std::thread::sleep(interval);
                }
            })
        };
        MemoryGuard {
            stop,
            killed,
            peak_kib,
            thread: Some(thread),
        }
    }

    /// What it saw so far.
    pub fn report(&self) -> GuardReport {
        GuardReport {
            peak_sampled_kib: self.peak_kib.load(Ordering::Relaxed),
            killed_at_cap: self.killed.load(Ordering::Relaxed),
        }
    }

    /// Whether it killed the process.
    pub fn killed_at_cap(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Stops watching; returns what it saw.
    pub fn stop(mut self) -> GuardReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.report()
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A thread of some process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadId {
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
}

impl ThreadId {
    /// The calling thread.
    pub fn current() -> ThreadId {
        // SAFETY: gettid has no preconditions and no memory effects.
        let tid = unsafe { libc::gettid() };
        ThreadId {
            pid: std::process::id(),
            tid: tid as u32,
        }
    }

    /// Time it waited on a run queue for a CPU since it started (`schedstat`, second field).
    pub fn run_queue_wait(self) -> Option<Duration> {
        let text =
            std::fs::read_to_string(format!("/proc/{}/task/{}/schedstat", self.pid, self.tid))
                .ok()?;
        let nanos: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }
}

/// The threads of `pid` whose name (`comm`, at most 15 bytes) starts with `prefix`.
pub fn threads_named(pid: u32, prefix: &str) -> Vec<ThreadId> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .map(|tid| ThreadId { pid, tid })
        .collect()
}

/// One sample of a [`RunQueueRecorder`]: when (since its epoch), and each thread's total wait
/// for a CPU so far.
type RunQueueSample = (Duration, Vec<Duration>);

/// Records, every few milliseconds, how long some threads have waited for a CPU — so that a
/// delay a test measures can be told apart from a machine too busy to run the threads involved.
pub struct RunQueueRecorder {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<RunQueueSample>>>,
    thread: Option<JoinHandle<()>>,
}

impl RunQueueRecorder {
    /// Samples `threads` every `interval`; times count from `epoch`.
    pub fn start(threads: Vec<ThreadId>, epoch: Instant, interval: Duration) -> RunQueueRecorder {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let waits: Vec<Duration> = threads
                        .iter()
                        .map(|thread| thread.run_queue_wait().unwrap_or_default())
                        .collect();
                    if let Ok(mut samples) = samples.lock() {
                        samples.push((epoch.elapsed(), waits));
                    }
                    std::thread::sleep(interval);
                }
            })
        };
        RunQueueRecorder {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns what was recorded.
    pub fn stop(mut self) -> RunQueueTimeline {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self
            .samples
            .lock()
            .map(|samples| samples.clone())
            .unwrap_or_default();
        RunQueueTimeline { samples }
    }
}

impl Drop for RunQueueRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a [`RunQueueRecorder`] saw: per sample, the time and each thread's total wait so far.
#[derive(Debug, Clone, Default)]
pub struct RunQueueTimeline {
    samples: Vec<RunQueueSample>,
}

impl RunQueueTimeline {
    /// A timeline from samples (time, each thread's total wait), in time order.
    pub fn from_samples(samples: Vec<RunQueueSample>) -> RunQueueTimeline {
        RunQueueTimeline { samples }
    }

    /// How long thread `index` waited for a CPU between `from` and `to` (times since the
    /// epoch), at the sampling's resolution: from the last sample at or before `from` to the
    /// first at or after `to`, so a wait is never underestimated.
    pub fn waited(&self, index: usize, from: Duration, to: Duration) -> Duration {
        let before = self.samples.partition_point(|(time, _)| *time <= from);
        let after = self.samples.partition_point(|(time, _)| *time < to);
        let at = |position: usize| {
            self.samples
                .get(position)
                .and_then(|(_, waits)| waits.get(index).copied())
        };
        match (
            at(before.saturating_sub(1)),
            at(after.min(self.samples.len().saturating_sub(1))),
        ) {
            (Some(start), Some(end)) => end.saturating_sub(start),
            _ => Duration::ZERO,
        }
    }

    /// Threads recorded.
    pub fn threads(&self) -> usize {
        self.samples.first().map_or(0, |(_, waits)| waits.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let status = ProcessStatus::read(std::process::id());
        assert!(status.rss_kib > 0 && status.peak_rss_kib >= status.rss_kib);
        assert!(status.threads >= 1 && status.data_kib > 0 && status.alive);
        assert!(open_fds(std::process::id()) >= 3);
        assert_eq!(ProcessStatus::read(u32::MAX), ProcessStatus::default());
        assert!(ThreadId::current().run_queue_wait().is_some());
        let named = threads_named(std::process::id(), "");
        assert!(named.contains(&ThreadId::current()));
    }

    #[test]
    fn waits_between_two_times_never_underestimate() {
        let ms = Duration::from_millis;
        let timeline = RunQueueTimeline::from_samples(vec![
            (ms(0), vec![ms(0)]),
            (ms(10), vec![ms(2)]),
            (ms(20), vec![ms(9)]),
            (ms(30), vec![ms(9)]),
        ]);
        assert_eq!(timeline.waited(0, ms(10), ms(20)), ms(7));
        assert_eq!(timeline.waited(0, ms(12), ms(18)), ms(7));
        assert_eq!(timeline.waited(0, ms(20), ms(30)), ms(0));
        assert_eq!(timeline.waited(0, ms(25), ms(99)), ms(0));
        assert_eq!(timeline.waited(1, ms(0), ms(30)), ms(0));
    }
}
