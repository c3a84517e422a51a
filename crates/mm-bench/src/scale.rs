//! Scale figures, ours and NATS's: memory per idle connection, memory and subscribe rate with a
//! million subscriptions, publish throughput with 100 000 distinct subjects subscribed.
//!
//! These measure the broker, so both sides use raw protocol clients that pipeline everything
//! (one connection sends all its SUBs or CONNECTs back to back, then one PING). The broker's RSS is
//! read from `/proc/<pid>/status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mm_wire::handshake::ConnectOptions;
use mm_wire::{Action, FrameDecoder, Header, Message, encode_frame};

use crate::workload::System;

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .context("no VmRSS")
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ") state".
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(user, system)| Some(user.parse::<u64>().ok()? + system.parse::<u64>().ok()?))
        .context("stat times")?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// A raw, blocking protocol connection to either broker.
pub struct RawConnection {
    system: System,
    stream: TcpStream,
    decoder: FrameDecoder,
    nats_buffer: Vec<u8>,
    out: Vec<u8>,
}

impl RawConnection {
    /// Sends the handshake without waiting for the answer (pipelined; see [`Self::sync`]).
    pub fn open(system: System, address: &str, service: &str) -> Result<RawConnection> {
        let stream = TcpStream::connect(address).with_context(|| format!("connect {address}"))?;
        stream.set_nodelay(true)?;
        let mut connection = RawConnection {
            system,
            stream,
            decoder: FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME),
            nats_buffer: Vec::new(),
            out: Vec::new(),
        };
        match system {
            System::Mm | System::MmRaw => {
                encode_frame(
                    &mut connection.out,
                    &Header::new(Action::Connect)
                        .with_subject(service)
                        .with_reply_subject("bench-scale"),
                    &ConnectOptions::mm2("bench-scale").to_message(),
                )?;
            }
            System::Nats => connection
                .out
                .extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n"),
        }
        connection.write_out()?;
        Ok(connection)
    }

    fn write_out(&mut self) -> Result<()> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Queues a subscription (written by [`Self::sync`] or when the buffer is large).
    pub fn subscribe(&mut self, id: u32, subject: &str) -> Result<()> {
        match self.system {
            System::Mm | System::MmRaw => {
                encode_frame(
                    &mut self.out,
                    &Header::new(Action::Subscribe)
                        .with_subscription_id(id)
                        .with_subject(subject),
                    &Message::new(),
                )?;
            }
            System::Nats => self
                .out
                .extend_from_slice(format!("SUB {subject} {id}\r\n").as_bytes()),
        }
        if self.out.len() > 256 * 1024 {
            self.write_out()?;
        }
        Ok(())
    }

    /// Queues a publish of `payload` bytes (MM: one BLOB field `p`).
    pub fn publish(&mut self, subject: &str, payload: &[u8], message: &Message) -> Result<()> {
        match self.system {
            System::Mm | System::MmRaw => {
                encode_frame(&mut self.out, &Header::send_message(subject), message)?;
            }
            System::Nats => {
                self.out
                    .extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
                self.out.extend_from_slice(payload);
                self.out.extend_from_slice(b"\r\n");
            }
        }
        if self.out.len() > 64 * 1024 {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes everything queued, then PING, and waits for the PONG (MM: the ACK first).
    /// Counts the messages that arrive meanwhile.
    pub fn sync(&mut self, timeout: Duration) -> Result<u64> {
        match self.system {
            System::Mm | System::MmRaw => {
                encode_frame(&mut self.out, &Header::new(Action::Ping), &Message::new())?
            }
            System::Nats => {
                self.out.extend_from_slice(b"PING\r\n");
                0
            }
        };
        self.write_out()?;
        let deadline = Instant::now() + timeout;
        let mut messages = 0;
        loop {
            if self.poll_for_pong(&mut messages)? {
                return Ok(messages);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!("no PONG within {timeout:?}");
            }
            self.read_some(remaining)?;
        }
    }

    /// Reads until `count` messages arrived; returns when the last one did.
    pub fn receive(&mut self, count: u64, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut messages = 0;
        loop {
            self.poll_for_pong(&mut messages)?;
            if messages >= count {
                return Ok(Instant::now());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!("{} of {count} messages missing", count - messages);
            }
            self.read_some(remaining)?;
        }
    }

    fn read_some(&mut self, timeout: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buffer = vec![0u8; 1 << 20];
        let read = match self.stream.read(&mut buffer) {
            Ok(0) => bail!("broker closed the connection"),
            Ok(read) => read,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        match self.system {
            System::Mm | System::MmRaw => self.decoder.feed(&buffer[..read]),
            System::Nats => self.nats_buffer.extend_from_slice(&buffer[..read]),
        }
        Ok(())
    }

    /// Consumes buffered input; counts messages; returns whether a PONG was seen.
    fn poll_for_pong(&mut self, messages: &mut u64) -> Result<bool> {
        let mut pong = false;
        match self.system {
            System::Mm | System::MmRaw => {
                while let Some(frame) = self.decoder.next_frame()? {
                    match frame.action() {
                        Some(Action::SendMessage) => *messages += 1,
                        Some(Action::Pong) => pong = true,
                        Some(Action::Error) => {
                            bail!("gateway error: {}", frame.message().unwrap_or_default())
                        }
                        _ => {}
                    }
                }
            }
            System::Nats => {
                let mut start = 0;
                while let Some(end) = memchr::memmem::find(&self.nats_buffer[start..], b"\r\n") {
                    let line = &self.nats_buffer[start..start + end];
                    if line.starts_with(b"MSG ") {
                        let size: usize = line
                            .rsplit(|&byte| byte == b' ')
                            .next()
                            .and_then(|size| std::str::from_utf8(size).ok())
                            .and_then(|size| size.parse().ok())
                            .context("bad MSG")?;
                        if self.nats_buffer.len() < start + end + 2 + size + 2 {
                            break;
                        }
                        *messages += 1;
                        start += end + 2 + size + 2;
                        continue;
                    }
                    match line {
                        b"PONG" => pong = true,
                        b"PING" => self.stream.write_all(b"PONG\r\n")?,
                        line if line.starts_with(b"-ERR") => {
                            bail!("NATS error: {}", String::from_utf8_lossy(line))
                        }
                        _ => {}
                    }
                    start += end + 2;
                }
                self.nats_buffer.drain(..start);
            }
        }
        Ok(pong)
    }
}

/// Memory per idle connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleConnectionsResult {
    /// The broker.
    pub system: System,
    /// Connections opened.
    pub connections: usize,
    /// Broker RSS before, KiB.
    pub rss_before_kib: u64,
    /// Broker RSS with every connection open and idle, KiB.
    pub rss_after_kib: u64,
    /// (after − before) / connections.
    pub bytes_per_connection: f64,
}

/// Opens `count` idle connections (each handshaken and answered) and measures the broker's RSS.
pub fn idle_connections(
    system: System,
    address: &str,
    service: &str,
    broker_pid: u32,
    count: usize,
) -> Result<IdleConnectionsResult> {
    raise_open_file_limit(count + 100)?;
    let before = rss_kib(broker_pid)?;
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(RawConnection::open(system, address, service)?);
    }
    for connection in &mut connections {
        connection.sync(Duration::from_secs(60))?;
    }
    // Let the broker settle (buffers of quiet connections are released after a second).
    std::thread::sleep(Duration::from_millis(2500));
    let after = rss_kib(broker_pid)?;
    drop(connections);
    Ok(IdleConnectionsResult {
        system,
        connections: count,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_connection: after.saturating_sub(before) as f64 * 1024.0 / count as f64,
    })
}

/// Memory and rate of many subscriptions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubscriptionsResult {
    /// The broker.
    pub system: System,
    /// Subscriptions made.
    pub subscriptions: usize,
    /// Subscriptions per second, from the first SUB sent to the PONG behind the last.
    pub subscribe_rate: f64,
    /// Broker RSS growth per subscription, bytes.
    pub bytes_per_subscription: f64,
    /// Broker RSS with every subscription in place, KiB.
    pub rss_after_kib: u64,
}

/// One connection subscribes `count` distinct subjects, pipelined.
pub fn subscriptions(
    system: System,
    address: &str,
    service: &str,
    broker_pid: u32,
    count: usize,
) -> Result<SubscriptionsResult> {
    let mut connection = RawConnection::open(system, address, service)?;
    connection.sync(Duration::from_secs(10))?;
    let before = rss_kib(broker_pid)?;
    let started = Instant::now();
    for index in 0..count {
        connection.subscribe(index as u32 + 1, &format!("scale.{index}.x"))?;
    }
    connection.sync(Duration::from_secs(600))?;
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_kib(broker_pid)?;
    Ok(SubscriptionsResult {
        system,
        subscriptions: count,
        subscribe_rate: count as f64 / seconds,
        bytes_per_subscription: after.saturating_sub(before) as f64 * 1024.0 / count as f64,
        rss_after_kib: after,
    })
}

/// Throughput when many distinct subjects are subscribed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManySubjectsResult {
    /// The broker.
    pub system: System,
    /// Distinct subjects subscribed.
    pub subjects: usize,
    /// Messages published (round-robin over the subjects).
    pub messages: u64,
    /// Messages per second received.
    pub messages_per_second: f64,
}

/// A subscriber holds `subjects` distinct subscriptions; a publisher sends `messages` 16-byte
/// messages round-robin over them.
pub fn many_subjects(
    system: System,
    address: &str,
    service: &str,
    subjects: usize,
    messages: u64,
) -> Result<ManySubjectsResult> {
    let mut subscriber = RawConnection::open(system, address, service)?;
    for index in 0..subjects {
        subscriber.subscribe(index as u32 + 1, &format!("subj.{index}"))?;
    }
    subscriber.sync(Duration::from_secs(600))?;
    let names: Vec<String> = (0..subjects).map(|index| format!("subj.{index}")).collect();
    let payload = vec![0x5au8; 16];
    let message = Message::new().add_blob("p", payload.clone());
    let mut publisher = RawConnection::open(system, address, service)?;
    publisher.sync(Duration::from_secs(10))?;
    let receiver =
        std::thread::spawn(move || subscriber.receive(messages, Duration::from_secs(300)));
    let started = Instant::now();
    for index in 0..messages {
        publisher.publish(&names[index as usize % subjects], &payload, &message)?;
    }
    publisher.sync(Duration::from_secs(300))?;
    let done = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok(ManySubjectsResult {
        system,
        subjects,
        messages,
        messages_per_second: messages as f64 / done.duration_since(started).as_secs_f64(),
    })
}

/// Raises this process's soft limit on open files to what `needed` requires (up to the hard limit).
pub fn raise_open_file_limit(needed: usize) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit failed");
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit failed");
        }
    }
    if (limit.rlim_cur as usize) < needed {
        bail!(
            "need {needed} open files, the hard limit is {}",
            limit.rlim_cur
        );
    }
    Ok(())
}
