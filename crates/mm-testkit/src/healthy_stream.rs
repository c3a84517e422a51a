//! A healthy client group that watches a gateway while something else abuses it: one publisher
//! sends numbered messages at a steady rate, two subscribers receive them and record every number
//! missing, out of order or repeated, and when each arrived.
//!
//! **Stall** is how much longer than the publisher's own spacing the stream took between two
//! consecutive messages: `arrival(n) − arrival(n−1) − (sent(n) − sent(n−1))`, where `arrival` is
//! the earliest arrival at either subscriber. A service that stops for 2 s shows up as a 2 s
//! stall; a publisher that was itself descheduled does not (its send times moved too), and
//! neither does one subscriber thread that the shared machine did not run for a while (the
//! other one saw the message in time).
//!
//! On a busy machine the gateway's service thread, or both subscribers, can also wait for a CPU
//! for a few hundred milliseconds. The stall the gateway is answerable for leaves that out: the
//! time the watched gateway threads and the less delayed subscriber spent on a run queue during
//! the gap (`/proc/…/schedstat`) is subtracted. Both figures are reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mm_wire::{Action, Message};

use crate::process::{RunQueueRecorder, RunQueueTimeline, ThreadId, threads_named};
use crate::raw_client::Received;
use crate::{PATIENCE, RawClient};

/// Subscribers of the stream.
const SUBSCRIBERS: usize = 2;

/// Where the group connects and what it sends.
#[derive(Debug, Clone)]
pub struct HealthyStreamOptions {
    /// The publisher's gateway.
    pub publish_to: SocketAddr,
    /// The subscribers' gateway (another gateway of the mesh, or the same one).
    pub subscribe_at: SocketAddr,
    /// Service name.
    pub service: String,
    /// Subject of the stream.
    pub subject: String,
    /// Messages per second.
    pub rate: u32,
    /// How long the subscribers wait for the last message once the publisher has flushed.
    pub drain: Duration,
    /// Gateway processes whose service thread (`svc-<service>`) is watched for time spent
    /// waiting for a CPU (see the module doc).
    pub gateway_pids: Vec<u32>,
}

impl HealthyStreamOptions {
    /// Publisher and subscribers on the same gateway, 1 000 messages per second on `subject`.
    pub fn new(gateway: SocketAddr, service: &str, subject: &str) -> Self {
        HealthyStreamOptions {
            publish_to: gateway,
            subscribe_at: gateway,
            service: service.to_owned(),
            subject: subject.to_owned(),
            rate: 1000,
            drain: Duration::from_secs(10),
            gateway_pids: Vec::new(),
        }
    }
}

/// What the group saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Messages the publisher sent.
    pub sent: u64,
    /// Messages every subscriber received.
    pub received: u64,
    /// Messages sent and not received by at least one subscriber.
    pub lost: u64,
    /// Messages a subscriber received after a higher number.
    pub out_of_order: u64,
    /// Messages a subscriber received more than once.
    pub duplicates: u64,
    /// Longest stall the gateway is answerable for (see the module doc), or the wait since the
    /// last message when the stream stopped arriving.
    pub longest_stall: Duration,
    /// Longest stall as the clients saw it, machine delays included.
    pub longest_raw_stall: Duration,
    /// When that stall ended, counted from the publisher's start.
    pub longest_stall_ended_at: Duration,
    /// Longest time from a send to its earliest receipt.
    pub max_latency: Duration,
    /// Whether the publisher's final flush was answered (false: the gateway never processed
    /// everything it sent).
    pub publisher_flushed: bool,
    /// Whether a connection of the group was closed by the gateway.
    pub closed_by_gateway: bool,
}

impl StreamReport {
    /// True when nothing was lost, reordered or repeated and the longest stall stayed below
    /// `stall`.
    pub fn is_healthy(&self, stall: Duration) -> bool {
        self.sent > 0
            && self.lost == 0
            && self.out_of_order == 0
            && self.duplicates == 0
            && self.longest_stall < stall
            && !self.closed_by_gateway
    }
}

impl std::fmt::Display for StreamReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, received {}, lost {}, out of order {}, duplicates {}, longest stall {} ms \
             (ending {:.1} s in; {} ms with waits for a CPU), max latency {} ms{}{}",
            self.sent,
            self.received,
            self.lost,
            self.out_of_order,
            self.duplicates,
            self.longest_stall.as_millis(),
            self.longest_stall_ended_at.as_secs_f64(),
            self.longest_raw_stall.as_millis(),
            self.max_latency.as_millis(),
            if self.publisher_flushed {
                ""
            } else {
                ", publisher's flush unanswered"
            },
            if self.closed_by_gateway {
                ", closed by the gateway"
            } else {
                ""
            }
        )
    }
}

/// What one subscriber saw: per message number, when it was sent and when it arrived (both
/// since the stream's start).
#[derive(Debug, Default)]
struct SubscriberLog {
    sent_at: Vec<Option<Duration>>,
    arrived_at: Vec<Option<Duration>>,
    received: u64,
    out_of_order: u64,
    duplicates: u64,
    closed: bool,
    /// When it stopped listening.
    ended_at: Duration,
}

/// A running healthy group. [`HealthyStream::finish`] stops it and reports.
pub struct HealthyStream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    publisher_done: Arc<AtomicBool>,
    publisher: Option<JoinHandle<(bool, bool)>>,
    subscribers: Vec<JoinHandle<SubscriberLog>>,
    /// Run-queue waits of the watched gateway threads, then of each subscriber.
    run_queue: Option<RunQueueRecorder>,
    gateway_threads: usize,
}

impl HealthyStream {
    /// Connects the clients, subscribes (with a mesh-wide flush, so the subscriptions are live
    /// at the publisher's gateway too), and starts publishing.
    pub fn start(options: HealthyStreamOptions) -> HealthyStream {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let publisher_done = Arc::new(AtomicBool::new(false));
        let mut subscribers: Vec<RawClient> = (0..SUBSCRIBERS)
            .map(|_| {
                let mut subscriber = RawClient::mm2(options.subscribe_at, &options.service);
                subscriber.subscribe(1, &options.subject);
                subscriber.mesh_flush();
                subscriber
            })
            .collect();
        let mut publisher = RawClient::mm2(options.publish_to, &options.service);
        publisher.flush();
        let epoch = Instant::now();
        let (thread_ids, ids) = std::sync::mpsc::channel();
        let subscribers = subscribers
            .drain(..)
            .map(|mut subscriber| {
                let (sent, done) = (sent.clone(), publisher_done.clone());
                let subject = options.subject.clone();
                let drain = options.drain;
                let thread_ids = thread_ids.clone();
                std::thread::spawn(move || {
                    let _ = thread_ids.send(ThreadId::current());
                    receive(
                        &mut subscriber,
                        subject.as_bytes(),
                        epoch,
                        drain,
                        &sent,
                        &done,
                    )
                })
            })
            .collect();
        let mut watched = gateway_threads(&options);
        let gateway_threads = watched.len();
        watched.extend(ids.iter().take(SUBSCRIBERS));
        let run_queue = RunQueueRecorder::start(watched, epoch, Duration::from_millis(5));
        let publisher = {
            let (stop, sent, done) = (stop.clone(), sent.clone(), publisher_done.clone());
            let subject = options.subject.clone();
            let period = Duration::from_secs(1) / options.rate.max(1);
            std::thread::spawn(move || {
                let mut closed = false;
                let mut n: u64 = 0;
                let mut bytes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let due = epoch + period.saturating_mul(n as u32);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let message = Message::new()
                        .add_u64("#", n)
                        .add_u64("t", epoch.elapsed().as_nanos() as u64);
                    bytes.clear();
                    mm_wire::encode_frame(
                        &mut bytes,
                        &mm_wire::Header::send_message(&subject),
                        &message,
                    )
                    .expect("encode");
                    if publisher.try_send_bytes(&bytes).is_err() {
                        closed = true;
                        break;
                    }
                    n += 1;
                    sent.store(n, Ordering::Relaxed);
                }
                let flushed = !closed && publisher.try_flush(PATIENCE);
                done.store(true, Ordering::Relaxed);
                (flushed, closed)
            })
        };
        HealthyStream {
            stop,
            sent,
            publisher_done,
            publisher: Some(publisher),
            subscribers,
            run_queue: Some(run_queue),
            gateway_threads,
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops publishing, waits for the publisher's flush and for the subscribers to receive the
    /// last message (at most [`HealthyStreamOptions::drain`] after the flush), and reports.
    pub fn finish(mut self) -> StreamReport {
        self.stop.store(true, Ordering::Relaxed);
        let (flushed, publisher_closed) = self
            .publisher
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or((false, true));
        self.publisher_done.store(true, Ordering::Relaxed);
        let logs: Vec<SubscriberLog> = self
            .subscribers
            .drain(..)
            .map(|thread| thread.join().unwrap_or_default())
            .collect();
        let run_queue = self
            .run_queue
            .take()
            .map(RunQueueRecorder::stop)
            .unwrap_or_default();
        let mut report = combine(
            self.sent.load(Ordering::Relaxed),
            &logs,
            &run_queue,
            self.gateway_threads,
        );
        report.publisher_flushed = flushed;
        report.closed_by_gateway |= publisher_closed;
        report
    }
}

impl Drop for HealthyStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.publisher_done.store(true, Ordering::Relaxed);
    }
}

/// The service threads of the watched gateways (every thread of a gateway that has none by
/// that name).
fn gateway_threads(options: &HealthyStreamOptions) -> Vec<ThreadId> {
    // A thread name is at most 15 bytes.
    let name: String = format!("svc-{}", options.service)
        .chars()
        .take(15)
        .collect();
    options
        .gateway_pids
        .iter()
        .flat_map(|&pid| {
            let named = threads_named(pid, &name);
            if named.is_empty() {
                threads_named(pid, "")
            } else {
                named
            }
        })
        .collect()
}

/// The group's report from its subscribers' logs and the run-queue waits (the first
/// `gateway_threads` threads of `run_queue` are the gateway's, then one per subscriber).
fn combine(
    sent: u64,
    logs: &[SubscriberLog],
    run_queue: &RunQueueTimeline,
    gateway_threads: usize,
) -> StreamReport {
    // Time the machine kept the threads involved waiting between two instants.
    let machine_delay = |from: Duration, to: Duration| {
        let gateway: Duration = (0..gateway_threads)
            .map(|index| run_queue.waited(index, from, to))
            .sum();
        let subscribers = (gateway_threads..run_queue.threads())
            .map(|index| run_queue.waited(index, from, to))
            .min()
            .unwrap_or_default();
        gateway + subscribers
    };
    let mut report = StreamReport {
        sent,
        out_of_order: logs.iter().map(|log| log.out_of_order).sum(),
        duplicates: logs.iter().map(|log| log.duplicates).sum(),
        closed_by_gateway: logs.iter().any(|log| log.closed),
        ..StreamReport::default()
    };
    // The stream's start is the first "previous message": a service already stalled when the
    // stream starts delays the first message.
    let mut previous: Option<(Duration, Duration)> = Some((Duration::ZERO, Duration::ZERO));
    for n in 0..sent as usize {
        let arrivals: Vec<Option<Duration>> = logs
            .iter()
            .map(|log| log.arrived_at.get(n).copied().flatten())
            .collect();
        if arrivals.iter().all(Option::is_some) {
            report.received += 1;
        } else {
            report.lost += 1;
        }
        let Some(arrived) = arrivals.into_iter().flatten().min() else {
            continue;
        };
        let Some(sent_at) = logs
            .iter()
            .find_map(|log| log.sent_at.get(n).copied().flatten())
        else {
            continue;
        };
        report.max_latency = report.max_latency.max(arrived.saturating_sub(sent_at));
        if let Some((previous_arrived, previous_sent)) = previous {
            let raw = arrived
                .saturating_sub(previous_arrived)
                .saturating_sub(sent_at.saturating_sub(previous_sent));
            report.longest_raw_stall = report.longest_raw_stall.max(raw);
            if raw > report.longest_stall {
                let stall = raw.saturating_sub(machine_delay(previous_arrived, arrived));
                if stall > report.longest_stall {
                    report.longest_stall = stall;
                    report.longest_stall_ended_at = arrived;
                }
            }
        }
        previous = Some((arrived, sent_at));
    }
    // A stream that stopped arriving counts as a stall up to when the subscribers gave up.
    let last_seen = (0..sent as usize).rev().find(|&n| {
        logs.iter()
            .any(|log| log.arrived_at.get(n).copied().flatten().is_some())
    });
    if last_seen.is_none_or(|n| n + 1 < sent as usize)
        && let Some((last_arrived, _)) = previous
    {
        let ended = logs
            .iter()
            .map(|log| log.ended_at)
            .max()
            .unwrap_or_default();
        let tail = ended.saturating_sub(last_arrived);
        report.longest_raw_stall = report.longest_raw_stall.max(tail);
        if tail > report.longest_stall {
            report.longest_stall = tail;
            report.longest_stall_ended_at = ended;
        }
    }
    report
}

fn receive(
    client: &mut RawClient,
    subject: &[u8],
    epoch: Instant,
    drain: Duration,
    sent: &AtomicU64,
    publisher_done: &AtomicBool,
) -> SubscriberLog {
    let mut log = SubscriberLog::default();
    let mut highest: Option<u64> = None;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if publisher_done.load(Ordering::Relaxed) {
            if log.received >= sent.load(Ordering::Relaxed) {
                break;
            }
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + drain);
            if Instant::now() >= deadline {
                break;
            }
        }
        match client.recv_event(Duration::from_millis(20)) {
            Received::Frame(frame) => {
                if frame.action() != Some(Action::SendMessage) || frame.subject() != subject {
                    continue;
                }
                let arrived = epoch.elapsed();
                let Ok(message) = frame.message() else {
                    continue;
                };
                let (Some(n), Some(t)) = (message.try_u64("#"), message.try_u64("t")) else {
                    continue;
                };
                let index = n as usize;
                if log.arrived_at.len() <= index {
                    log.arrived_at.resize(index + 1, None);
                    log.sent_at.resize(index + 1, None);
                }
                if log.arrived_at[index].is_some() {
                    log.duplicates += 1;
                    continue;
                }
                log.arrived_at[index] = Some(arrived);
                log.sent_at[index] = Some(Duration::from_nanos(t));
                log.received += 1;
                if highest.is_some_and(|highest| n < highest) {
                    log.out_of_order += 1;
                }
                highest = Some(highest.map_or(n, |highest| highest.max(n)));
            }
            Received::Timeout => {}
            Received::Closed => {
                log.closed = true;
                break;
            }
        }
    }
    log.ended_at = epoch.elapsed();
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(events: &[(u64, u64)]) -> SubscriberLog {
        let mut log = SubscriberLog::default();
        for &(sent, arrived) in events {
            log.sent_at.push(Some(Duration::from_millis(sent)));
            log.arrived_at.push(Some(Duration::from_millis(arrived)));
            log.received += 1;
        }
        log.ended_at = Duration::from_millis(events.last().map_or(0, |event| event.1));
        log
    }

    #[test]
    fn a_stall_is_delay_beyond_the_publishers_spacing_at_the_earliest_subscriber() {
        // Message 2 waits 500 ms at the gateway: both subscribers see it late.
        let frozen = [
            log(&[(0, 0), (1, 1), (2, 501), (3, 502)]),
            log(&[(0, 0), (1, 1), (2, 501), (3, 502)]),
        ];
        let report = combine(4, &frozen, &RunQueueTimeline::default(), 0);
        assert_eq!(report.longest_stall, Duration::from_millis(499));
        assert_eq!(report.lost, 0);
        // One subscriber was not scheduled for 500 ms; the other saw everything in time.
        let one_late = [
            log(&[(0, 0), (1, 1), (2, 501), (3, 502)]),
            log(&[(0, 0), (1, 1), (2, 2), (3, 3)]),
        ];
        assert_eq!(
            combine(4, &one_late, &RunQueueTimeline::default(), 0).longest_stall,
            Duration::ZERO
        );
        // The publisher was not scheduled for 500 ms: its send times moved too.
        let publisher_late = [log(&[(0, 0), (500, 500)]), log(&[(0, 0), (500, 500)])];
        assert_eq!(
            combine(2, &publisher_late, &RunQueueTimeline::default(), 0).longest_stall,
            Duration::ZERO
        );
    }

    #[test]
    fn time_the_machine_kept_the_threads_waiting_is_not_the_gateways() {
        let ms = Duration::from_millis;
        let frozen = [
            log(&[(0, 0), (1, 1), (2, 501), (3, 502)]),
            log(&[(0, 0), (1, 1), (2, 501), (3, 502)]),
        ];
        // The gateway thread waited 300 ms for a CPU during the gap, one subscriber 100 ms, the
        // other 150 ms.
        let run_queue = RunQueueTimeline::from_samples(vec![
            (ms(0), vec![ms(0), ms(0), ms(0)]),
            (ms(600), vec![ms(300), ms(100), ms(150)]),
        ]);
        let report = combine(4, &frozen, &run_queue, 1);
        assert_eq!(report.longest_raw_stall, ms(499));
        assert_eq!(report.longest_stall, ms(99));
    }

    #[test]
    fn a_message_missing_at_one_subscriber_is_lost_and_the_tail_counts_as_a_stall() {
        let mut partial = log(&[(0, 0), (1, 1)]);
        partial.ended_at = Duration::from_millis(3_000);
        let report = combine(
            3,
            &[log(&[(0, 0), (1, 1), (2, 2)]), partial],
            &RunQueueTimeline::default(),
            0,
        );
        assert_eq!((report.received, report.lost), (2, 1));
        assert_eq!(
            report.longest_stall,
            Duration::ZERO,
            "message 2 arrived in time at one"
        );
        let mut stopped = log(&[(0, 0)]);
        stopped.ended_at = Duration::from_millis(2_000);
        let report = combine(
            3,
            &[stopped, log(&[(0, 0)])],
            &RunQueueTimeline::default(),
            0,
        );
        assert_eq!(report.lost, 2);
        assert_eq!(report.longest_stall, Duration::from_millis(2_000));
    }
}
