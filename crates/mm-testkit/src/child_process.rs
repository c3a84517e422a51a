//! A child process that is stopped when its handle is dropped.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// A running child process. Dropping it sends SIGTERM and waits (SIGKILL after [`PATIENCE`]), so
/// no test or benchmark leaves a process behind.
#[derive(Debug)]
pub struct ChildProcess {
    child: Option<Child>,
}

impl ChildProcess {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> ChildProcess {
        ChildProcess { child: Some(child) }
    }

    /// The process id (0 once it has been stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// Sends SIGINT and waits for the exit status.
    pub fn interrupt(&mut self) -> Option<ExitStatus> {
        self.signal_and_wait(libc::SIGINT)
    }

    /// The exit status, if the process has ended (by itself, or killed).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Sends SIGTERM and waits up to `limit` for the exit. `Ok((status, elapsed))` if it exited
    /// by itself in time; otherwise it is killed with SIGKILL and `Err(limit)` comes back.
    pub fn terminate_within(
        &mut self,
        limit: Duration,
    ) -> Result<(ExitStatus, Duration), Duration> {
        self.resume();
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        let Some(mut child) = self.child.take() else {
            return Err(Duration::ZERO);
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(limit);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, as in a crash; waits for the process to be gone.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGSTOP: the process freezes (its sockets stay open but nothing is read or answered).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`ChildProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends `signal` (a `libc::SIG*` number) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: `kill` with a valid signal number on our own child's pid has no memory
            // effects.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    fn signal_and_wait(&mut self, signal: i32) -> Option<ExitStatus> {
        // A paused process must run again to handle the signal.
        self.resume();
        self.signal(signal);
        let mut child = self.child.take()?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}
