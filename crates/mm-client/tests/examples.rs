//! The example programs (`examples/`), run as processes: each explains itself with `--help`,
//! refuses what it does not understand, and does what its comment says against a real gateway.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};

use mm_testkit::{GatewayProcess, PATIENCE};

const EXAMPLES: [&str; 4] = ["publisher", "subscriber", "requester", "responder"];

/// An example's binary: cargo builds examples next to the test binaries' `deps` directory.
fn example(name: &str) -> Command {
    let test_binary = std::env::current_exe().expect("test binary path");
    let profile_directory = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path: PathBuf = profile_directory.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo build --examples`; `cargo test` also builds them)",
        path.display()
    );
    let mut command = Command::new(path);
    command.stdin(Stdio::null());
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("run the example")
}

#[test]
fn every_example_explains_itself_with_help_without_connecting() {
    for name in EXAMPLES {
        for help in ["--help", "-h"] {
            // The gateway given is not listening: --help must not connect.
            let result = output(example(name).args(["--gateway", "127.0.0.1:1", help]));
            let stdout = String::from_utf8_lossy(&result.stdout);
            assert_eq!(result.status.code(), Some(0), "{name} {help}: {result:?}");
            assert!(
                stdout.starts_with(&format!(
                    "usage: {name} [--gateway HOST[:PORT]] [--service NAME]\n"
                )),
                "{name}: {stdout}"
            );
            assert!(result.stderr.is_empty(), "{name}: {result:?}");
        }
        let result = output(example(name).arg("127.0.0.1:5050"));
        assert_eq!(result.status.code(), Some(2), "{name}: {result:?}");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.starts_with("unexpected argument `127.0.0.1:5050`\nusage: "),
            "{name}: {stderr}"
        );
    }
}

/// A running example whose stdout and stderr lines arrive on channels; killed when dropped.
struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Running {
    fn start(name: &str, gateway: &GatewayProcess, service: &str) -> Running {
        let mut child = example(name)
            .args(["--gateway", &gateway.address_string(), "--service", service])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line containing `text` (stderr or stdout); panics with what came instead.
    fn expect_line(&self, on_stderr: bool, text: &str) -> String {
        let lines = if on_stderr {
            &self.stderr
        } else {
            &self.stdout
        };
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {text:?}; got {seen:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

#[test]
fn requester_gets_the_responders_sums_and_subscriber_prints_the_publishers_prices() {
    let gateway = GatewayProcess::start(&[]);
    let responder = Running::start("responder", &gateway, "EXAMPLES1");
    responder.expect_line(true, "answering Service.Add");
    let requester = Running::start("requester", &gateway, "EXAMPLES1");
    for n in 0..5 {
        requester.expect_line(false, &format!("{n} + 0.5 = {}", f64::from(n) + 0.5));
    }

    let subscriber = Running::start("subscriber", &gateway, "EXAMPLES2");
    subscriber.expect_line(true, "listening on PRICES.>");
    let _publisher = Running::start("publisher", &gateway, "EXAMPLES2");
    let line = subscriber.expect_line(false, "PRICES.IBM ");
    assert!(line.contains("sym=\"IBM\""), "{line}");
    // The requester ends by itself after its five requests.
    let mut requester = requester;
    assert!(mm_testkit::wait_until(PATIENCE, || {
        requester.child.try_wait().ok().flatten().is_some()
    }));
    assert_eq!(
        requester.child.wait().ok().and_then(|status| status.code()),
        Some(0)
    );
}
