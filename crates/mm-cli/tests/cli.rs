//! The `mm` commands driven as processes against a real gateway.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};

use mm_testkit::{GatewayProcess, PATIENCE};

const SERVICE: &str = "CLITEST";

/// `mm ARGS...`, with no defaults from this machine's environment or config file.
fn mm_bare() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mm"));
    command
        .env_remove("MM_GATEWAY")
        .env_remove("MM_SERVICE")
        .env("MM_CONFIG", "")
        .stdin(Stdio::null());
    command
}

/// `mm SUBCOMMAND --gateway ADDR --service CLITEST ARGS...`
fn mm(gateway: &GatewayProcess, subcommand: &str, args: &[&str]) -> Command {
    let mut command = mm_bare();
    command
        .arg(subcommand)
        .args(["--gateway", &gateway.address_string(), "--service", SERVICE])
        .args(args);
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("run mm")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A long-running `mm` (listen, reply) that has confirmed its subscription.
struct Background {
    child: Child,
    stderr_lines: Receiver<String>,
}

impl Background {
    /// Starts it and waits for its "listening on" / "answering requests on" line.
    fn start(mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mm");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, stderr_lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = stderr_lines
            .recv_timeout(PATIENCE)
            .expect("mm reports ready");
        assert!(
            ready.contains("listening on") || ready.contains("answering requests on"),
            "{ready}"
        );
        Background {
            child,
            stderr_lines,
        }
    }

    fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout")
    }

    /// Waits for it to exit; returns (exit code, stdout).
    fn finish(mut self) -> (Option<i32>, String) {
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).expect("read stdout");
        }
        let mut status = None;
        mm_testkit::wait_until(PATIENCE, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        let status = status.expect("mm did not exit");
        (status.code(), out)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn listen_prints_like_tibrvlisten_and_send_types_fields() {
    let gateway = GatewayProcess::start(&[]);
    let listen = Background::start(mm(&gateway, "listen", &["PRICES.>", "--count", "3"]));
    let blob_file = tempfile::NamedTempFile::with_prefix("mm-test-blob-").unwrap();
    std::fs::write(blob_file.path(), [0xca, 0xfe]).unwrap();
    let blob_arg = format!("data:blob=@{}", blob_file.path().display());
    let sent = run(mm(
        &gateway,
        "send",
        &[
            "PRICES.IBM",
            "sym=IBM",
            "px=123.4",
            "qty:u32=100",
            "n=7",
            "ok=true",
            &blob_arg,
        ],
    ));
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(stdout(&sent).is_empty());
    assert_eq!(
        stderr(&sent),
        format!(
            "mm: sent PRICES.IBM {{sym=\"IBM\" px=123.4 qty=100 n=7 ok=true data=0xcafe}} \
             (service {SERVICE} at {})\n",
            gateway.address_string()
        )
    );
    let sent = run(mm(
        &gateway,
        "send",
        &[
            "PRICES.MSFT",
            "--reply",
            "REPLY.HERE",
            "--json",
            r#"{"sym":"MSFT","legs":{"qty":100,"venue":{"mic":"XNAS"}}}"#,
        ],
    ));
    assert!(sent.status.success(), "{}", stderr(&sent));
    let sent = run(mm(&gateway, "send", &["PRICES.EMPTY"]));
    assert!(sent.status.success(), "{}", stderr(&sent));
    let (code, out) = listen.finish();
    assert_eq!(code, Some(0));

    let expected_first = "subject=PRICES.IBM message={\n    sym:str=\"IBM\"\n    px:f64=123.4\n    \
                          qty:u32=100\n    n:i32=7\n    ok:bool=true\n    data:blob=0xcafe\n}\n";
    let (time, rest) = out.split_at(25);
    assert!(
        time.len() == 25 && time.as_bytes()[4] == b'-' && time.ends_with("Z "),
        "{time:?}"
    );
    assert!(rest.starts_with(expected_first), "{out}");
    assert!(
        out.contains(
            "subject=PRICES.MSFT reply=REPLY.HERE message={\n    sym:str=\"MSFT\"\n    legs:msg={\n        \
             qty:i32=100\n        venue:msg={\n            mic:str=\"XNAS\"\n        }\n    }\n}\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("subject=PRICES.EMPTY message={}\n"), "{out}");
}

#[test]
fn listen_json_prints_one_object_per_line() {
    let gateway = GatewayProcess::start(&[]);
    let listen = Background::start(mm(&gateway, "listen", &["--json", "J.*", "--count", "5"]));
    let sent = run(mm(
        &gateway,
        "send",
        &[
            "J.one", "s=text", "n=1", "n=2", "--count", "5", "--reply", "R.S", "-q",
        ],
    ));
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert_eq!(stderr(&sent), "", "-q says nothing");
    let (code, out) = listen.finish();
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["subject"], "J.one");
        assert_eq!(value["reply"], "R.S");
        assert_eq!(value["message"]["s"], "text");
        assert_eq!(value["message"]["n"], serde_json::json!([1, 2]));
        assert!(value["time"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn reply_echoes_or_answers_with_fixed_fields_and_request_prints_the_reply() {
    let gateway = GatewayProcess::start(&[]);
    let echo = Background::start(mm(&gateway, "reply", &["Service.Echo", "--count", "1"]));
    let output = run(mm(
        &gateway,
        "request",
        &["Service.Echo", "text=hello", "n:u64=5"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let reply = stdout(&output);
    assert!(
        reply.contains("message={\n    text:str=\"hello\"\n    n:u64=5\n}"),
        "{reply}"
    );
    assert!(reply.contains("subject=_INBOX."), "{reply}");
    let (code, printed) = echo.finish();
    assert_eq!(code, Some(0));
    assert!(
        printed.contains("subject=Service.Echo reply=_INBOX."),
        "{printed}"
    );

    let fixed = Background::start(mm(
        &gateway,
        "reply",
        &[
            "Service.Status.*",
            "status=up",
            "load:f64=0.25",
            "--count",
            "1",
        ],
    ));
    let output = run(mm(
        &gateway,
        "request",
        &[
            "Service.Status.eu",
            "--json-output",
            "--json",
            r#"{"who":"me"}"#,
        ],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(
        value["message"],
        serde_json::json!({"status": "up", "load": 0.25})
    );
    assert_eq!(fixed.finish().0, Some(0));
}

#[test]
fn request_timeout_and_no_responders_have_distinct_exit_codes() {
    let gateway = GatewayProcess::start(&[]);
    let output = run(mm(&gateway, "request", &["Nobody.home", "x=1"]));
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(stderr(&output), "mm: no responders for `Nobody.home`\n");

    // A listener that never answers.
    let _silent = Background::start(mm(&gateway, "listen", &["Silent.service"]));
    let output = run(mm(
        &gateway,
        "request",
        &["Silent.service", "--timeout", "0.2"],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("mm: timeout: no reply to `Silent.service`"));
    assert_eq!(stderr(&output).lines().count(), 1);
}

#[test]
fn stats_prints_a_table_or_raw_json() {
    let gateway = GatewayProcess::start(&["--name", "gw-cli"]);
    let _listener = Background::start(mm(&gateway, "listen", &["ANY.>"]));
    let output = run(mm(&gateway, "stats", &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("service") && line.ends_with(SERVICE)),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("gateway_name") && line.ends_with("gw-cli"))
    );
    assert!(table.contains("\nCONNECTION (2)\n"), "{table}");
    let header = table
        .lines()
        .find(|line| line.starts_with("id "))
        .expect("a connection table header");
    assert!(
        header.contains("name") && header.contains("frames_in"),
        "{header}"
    );

    let output = run(mm(&gateway, "stats", &["--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(value["service"], SERVICE);
    assert_eq!(value["clients"], 2);
    assert_eq!(value["connection"].as_array().unwrap().len(), 2);
}

#[test]
fn errors_are_one_clear_line_and_a_nonzero_exit() {
    let gateway = GatewayProcess::start(&[]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "A..B"],
            "mm: invalid subject `A..B`: empty token at position 2\n",
        ),
        (
            &["send", "A", "n:int=1"],
            "mm: field `n`: unknown type `int` (known: i32, u32, i64, u64, f64, bool, str, blob)\n",
        ),
        (
            &["send", "A", "x=1", "--json", "{}"],
            "mm: give the message either as FIELD arguments or with --json, not both\n",
        ),
        (
            &["listen", "A.>.B"],
            "mm: invalid pattern `A.>.B`: `>` at token 2 is not the last token (`>`)\n",
        ),
    ];
    for (args, expected) in cases {
        let output = run(mm(&gateway, args[0], &args[1..]));
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output), *expected, "{args:?}");
    }
    let port = mm_testkit::free_port();
    let output = run({
        let mut command = mm_bare();
        command.args(["send", "--gateway", &format!("127.0.0.1:{port}"), "A"]);
        command
    });
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("mm: service DEFAULT: cannot connect to 127.0.0.1:"),
        "{message}"
    );

    // Usage errors are clap's, with exit code 2.
    let output = run(mm(&gateway, "send", &[]));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_pipe_is_success() {
    let gateway = GatewayProcess::start(&[]);
    let mut listen = Background::start(mm(&gateway, "listen", &["PIPE", "--count", "1000"]));
    let stdout = listen.take_stdout();
    let sent = run(mm(&gateway, "send", &["PIPE", "n=1"]));
    assert!(sent.status.success());
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert!(first.contains("subject=PIPE"), "{first}");
    drop(lines);
    // Keep sending until it notices the closed pipe and exits.
    // Keep sending until `listen` notices its stdout is gone and exits.
    let mut status = None;
    mm_testkit::wait_until(PATIENCE, || {
        let sent = run(mm(&gateway, "send", &["PIPE", "n=2", "--count", "10"]));
        assert!(sent.status.success());
        status = listen.child.try_wait().unwrap();
        status.is_some()
    });
    let code = status.expect("listen did not exit").code();
    assert_eq!(code, Some(0));
    let errors: Vec<String> = listen.stderr_lines.try_iter().collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn help_explains_with_examples() {
    let output = mm_bare().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for word in [
        "listen",
        "send",
        "request",
        "reply",
        "stats",
        "Examples",
        "--gateway",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    for (command, expected) in [
        ("send", "name:TYPE=value"),
        ("request", "3 timeout, 4 no responders"),
        ("listen", "--json"),
        ("reply", "echo"),
        ("stats", "--json"),
    ] {
        let output = mm_bare().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains(expected), "{command}: {help}");
        assert!(help.contains("Examples:"), "{command}: {help}");
        assert!(
            help.contains("--gateway <HOST[:PORT]>"),
            "{command}: {help}"
        );
        assert!(help.contains("[env: MM_GATEWAY=]"), "{command}: {help}");
        assert!(
            help.contains("[default: 127.0.0.1:5050]"),
            "{command}: {help}"
        );
    }
}

#[test]
fn stats_shows_mesh_links_and_peers() {
    let mesh = mm_testkit::MeshProcesses::start(2, SERVICE, "");
    assert!(mesh.wait_fully_linked(PATIENCE), "mesh linked");
    let output = run(mm(&mesh.gateways[0], "stats", &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.contains("\nLINK (2)\n"), "{table}");
    assert!(table.contains("\nPEER (2)\n"), "{table}");
    let link_header = table
        .lines()
        .skip_while(|line| !line.starts_with("LINK"))
        .nth(1)
        .expect("a link table header");
    for column in [
        "direction",
        "peer_id",
        "frames_in",
        "frames_out",
        "bytes_out",
    ] {
        assert!(link_header.contains(column), "{column} in {link_header}");
    }
    // One peer row is this gateway itself, one is up.
    assert!(table.lines().any(|line| line.contains(" self ")), "{table}");
    assert!(table.lines().any(|line| line.contains(" up ")), "{table}");
}

#[test]
fn mesh_shows_each_peer_how_it_was_found_and_its_links() {
    let mesh = mm_testkit::MeshProcesses::start(2, SERVICE, "");
    assert!(mesh.wait_fully_linked(PATIENCE), "mesh linked");
    let output = run(mm(&mesh.gateways[0], "mesh", &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("service  {SERVICE}\ngateway  gw1 (id ")),
        "{text}"
    );
    assert!(text.contains("peers    1, 1 linked both ways"), "{text}");
    assert!(text.contains("DISCOVERY: none"), "{text}");
    let rows: Vec<&str> = text.lines().skip_while(|line| *line != "PEERS").collect();
    assert!(
        rows[1].starts_with("address") && rows[1].contains("found_by"),
        "{text}"
    );
    let own = format!("127.0.0.1:{}", mesh.ports[0]);
    let other = format!("localhost:{}", mesh.ports[1]);
    assert!(
        rows.iter()
            .any(|row| row.starts_with(&own) && row.contains("(this gateway)")),
        "{text}"
    );
    assert!(
        rows.iter().any(|row| row.starts_with(&other)
            && row.contains(" config ")
            && row.contains(" gw2 ")
            && row.contains(" up ")),
        "{text}"
    );

    let output = run(mm(&mesh.gateways[1], "mesh", &["--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let peers = json["peer"].as_array().expect("peer entries");
    assert_eq!(peers.len(), 2, "{json}");
    assert!(peers.iter().any(|peer| peer["gateway"] == "gw1"
        && peer["found_by"] == "config"
        && peer["dialled"] == "up"
        && peer["accepted"] == "up"));
}

/// `mm bench SUBCOMMAND --json ...` against `gateway`, parsed.
fn bench_json(gateway: &GatewayProcess, args: &[&str]) -> serde_json::Value {
    let mut command = mm_bare();
    command
        .arg("bench")
        .args(args)
        .args(["--gateway", &gateway.address_string(), "--json"]);
    let output = run(command);
    assert!(
        output.status.success(),
        "mm bench {args:?}: {}",
        stderr(&output)
    );
    serde_json::from_str(stdout(&output).trim()).expect("one JSON object")
}

#[test]
fn bench_measures_throughput_and_latency_with_both_clients() {
    let gateway = GatewayProcess::start(&[]);
    for system in ["mm", "mm-raw"] {
        let result = bench_json(
            &gateway,
            &["pubsub", "--system", system, "-n", "20000", "--size", "64"],
        );
        assert_eq!(result["published"], 20000, "{result}");
        assert_eq!(result["received"], 20000, "{result}");
        assert!(result["messages_per_second"].as_f64().unwrap() > 0.0);

        let result = bench_json(
            &gateway,
            &["fanout", "--system", system, "-s", "3", "-n", "5000"],
        );
        assert_eq!(result["received"], 15000, "{result}");

        let result = bench_json(&gateway, &["request", "--system", system, "-n", "300"]);
        let p50 = result["p50_us"].as_f64().unwrap();
        assert!(
            p50 > 0.0 && p50 <= result["p99_us"].as_f64().unwrap(),
            "{result}"
        );
    }
    let result = bench_json(&gateway, &["pub", "--int32", "-n", "50000"]);
    assert_eq!(result["payload"], "int32");
    assert_eq!(result["subscribers"], 0);
}

/// TLS and credentials from options and from the environment (docs/security.md).
#[test]
fn tls_and_credentials() {
    use std::io::Write;
    let pki = mm_testkit::pki::TestPki::new("cli");
    let server = pki.issue("server", "gateway");
    let mut passwd = Command::new(mm_testkit::binary_path("mm-gateway"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mm-gateway passwd");
    writeln!(passwd.stdin.take().unwrap(), "cli-password").unwrap();
    let hash = String::from_utf8(passwd.wait_with_output().unwrap().stdout).unwrap();
    let config = mm_testkit::write_config(
        "cli-tls",
        &format!(
            r#"{{"Tls": {{"CertFile": "{}", "KeyFile": "{}"}},
                "ServiceSecurity": {{"{SERVICE}": {{"Users": [{{"Name": "ops", "PasswordHash": "{}",
                    "Publish": {{"Allow": ["Ops.>", "_MM.STATS"]}}}}]}}}}}}"#,
            server.cert.display(),
            server.key.display(),
            hash.trim()
        ),
    );
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let ca = pki.ca_file().to_str().unwrap().to_owned();
    // Options.
    let output = run(mm(
        &gateway,
        "send",
        &[
            "--tls-ca",
            &ca,
            "--user",
            "ops",
            "--password",
            "cli-password",
            "Ops.Note",
            "n=1",
        ],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    // Environment.
    let mut command = mm(&gateway, "stats", &[]);
    command
        .env("MM_TLS_CA", &ca)
        .env("MM_USER", "ops")
        .env("MM_PASSWORD", "cli-password");
    let output = run(command);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("gateway_id"),
        "{}",
        stdout(&output)
    );
    // Wrong password, and plaintext: clear errors.
    let output = run(mm(
        &gateway,
        "send",
        &[
            "--tls-ca",
            &ca,
            "--user",
            "ops",
            "--password",
            "nope",
            "Ops.Note",
            "n=1",
        ],
    ));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("AUTHENTICATION_FAILED"),
        "{}",
        stderr(&output)
    );
    let output = run(mm(&gateway, "send", &["Ops.Note", "n=1"]));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("TLS_REQUIRED"),
        "{}",
        stderr(&output)
    );
}

/// Reads lines from `lines` until one contains `text`; panics with what came instead.
fn expect_line(lines: &Receiver<String>, text: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line containing {text:?}; got {seen:?}");
}

/// Stdout lines of a running `mm`, on a channel.
fn stdout_lines(background: &mut Background) -> Receiver<String> {
    let stdout = background.take_stdout();
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[test]
fn defaults_come_from_the_flags_then_the_environment_then_the_config_file() {
    let gateway = GatewayProcess::start(&[]);
    let config = tempfile::NamedTempFile::with_prefix("mm-config-").unwrap();
    std::fs::write(
        config.path(),
        format!(
            r#"{{"gateway": "localhost:{}", "service": "FROMFILE"}}"#,
            gateway.port()
        ),
    )
    .unwrap();
    let with_config = |service_env: Option<&str>| {
        let mut command = mm_bare();
        command.env("MM_CONFIG", config.path());
        if let Some(service) = service_env {
            command.env("MM_SERVICE", service);
        }
        command
    };
    // Gateway and service from the file.
    let mut from_file = Background::start({
        let mut command = with_config(None);
        command.args(["listen", "--json", "DEFAULTS.*"]);
        command
    });
    // The environment beats the file.
    let mut from_env = Background::start({
        let mut command = with_config(Some("FROMENV"));
        command.args(["listen", "--json", "DEFAULTS.*"]);
        command
    });
    let file_lines = stdout_lines(&mut from_file);
    let env_lines = stdout_lines(&mut from_env);

    let sent = run({
        let mut command = with_config(None);
        command.args(["send", "DEFAULTS.one", "-q"]);
        command
    });
    assert!(sent.status.success(), "{}", stderr(&sent));
    expect_line(&file_lines, "\"DEFAULTS.one\"");

    let sent = run({
        let mut command = with_config(Some("FROMENV"));
        command.args(["send", "DEFAULTS.two"]);
        command
    });
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(
        stderr(&sent).ends_with(&format!(
            "(service FROMENV at localhost:{})\n",
            gateway.port()
        )),
        "{}",
        stderr(&sent)
    );
    expect_line(&env_lines, "\"DEFAULTS.two\"");

    // A flag beats the environment.
    let sent = run({
        let mut command = with_config(Some("FROMENV"));
        command.args(["send", "DEFAULTS.three", "--service", "FROMFILE", "-q"]);
        command
    });
    assert!(sent.status.success(), "{}", stderr(&sent));
    expect_line(&file_lines, "\"DEFAULTS.three\"");
    // Each listener saw only its own service's message.
    assert!(file_lines.try_recv().is_err());
    assert!(env_lines.try_recv().is_err());

    // A config file that MM_CONFIG names must exist and make sense.
    let output = run({
        let mut command = mm_bare();
        command
            .env("MM_CONFIG", "/nonexistent/mm.json")
            .args(["stats"]);
        command
    });
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("mm: config file /nonexistent/mm.json: "),
        "{}",
        stderr(&output)
    );
    std::fs::write(config.path(), r#"{"gatway": "x"}"#).unwrap();
    let output = run(with_config(None));
    assert_eq!(
        stderr(&output),
        format!(
            "mm: config file {}: unknown key `gatway` (known: gateway, service)\n",
            config.path().display()
        )
    );
}

#[test]
fn stats_tells_connections_apart_and_lists_their_subscriptions() {
    let gateway = GatewayProcess::start(&[]);
    let listen = Background::start(mm(&gateway, "listen", &["SUBS.A.>", "SUBS.*.B"]));
    let reply = Background::start(mm(&gateway, "reply", &["SUBS.Echo"]));
    let output = run(mm(&gateway, "stats", &["--subscriptions"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let listen_name = format!("mm-listen@{host}:{}", listen.child.id());
    let reply_name = format!("mm-reply@{host}:{}", reply.child.id());
    assert!(
        table
            .lines()
            .any(|line| line.contains(&format!("({listen_name}): SUBS.*.B SUBS.A.>"))),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|line| line.contains(&format!("({reply_name}): SUBS.Echo"))),
        "{table}"
    );
    // The asking connection is listed too, under its own name (its inbox is subscribed).
    assert!(table.contains("(mm-stats@"), "{table}");
    // Without the flag, no such section.
    let plain = stdout(&run(mm(&gateway, "stats", &[])));
    assert!(!plain.contains("SUBSCRIPTIONS"), "{plain}");
    assert!(plain.contains(&listen_name), "{plain}");
}

#[test]
fn listen_says_it_is_reconnecting_and_when_it_is_back() {
    let port = mm_testkit::free_port().to_string();
    let mut gateway =
        GatewayProcess::start_exact(&["--port", &port, "--bind", "127.0.0.1"]).unwrap();
    let mut listen = Background::start(mm(&gateway, "listen", &["BACK.>"]));
    let lines = stdout_lines(&mut listen);
    gateway.kill();
    let disconnected = listen
        .stderr_lines
        .recv_timeout(PATIENCE)
        .expect("a line about the lost gateway");
    assert!(
        disconnected.starts_with("mm: disconnected (")
            && disconnected.ends_with(") — reconnecting"),
        "{disconnected}"
    );
    // A new gateway on the same port (retried while the old socket is released).
    let mut restarted = None;
    mm_testkit::wait_until(PATIENCE, || {
        restarted = GatewayProcess::start_exact(&["--port", &port, "--bind", "127.0.0.1"]).ok();
        restarted.is_some()
    });
    let gateway = restarted.expect("the gateway restarted");
    expect_line(&listen.stderr_lines, "mm: reconnected to 127.0.0.1:");
    let sent = run(mm(&gateway, "send", &["BACK.again", "-q"]));
    assert!(sent.status.success(), "{}", stderr(&sent));
    expect_line(&lines, "subject=BACK.again");
}

#[test]
fn localhost_names_the_gateway() {
    let gateway = GatewayProcess::start(&[]);
    let output = run({
        let mut command = mm_bare();
        command.args([
            "request",
            "_MM.STATS",
            "--gateway",
            &format!("localhost:{}", gateway.port()),
            "--json-output",
        ]);
        command
    });
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(value["message"]["service"], "DEFAULT");
}

#[test]
fn listen_shows_the_gateways_advisories_such_as_a_slow_consumer_cut_off() {
    // 64 KiB frames, 128 KiB of queued output per client.
    let config = mm_testkit::write_config(
        "advisories",
        r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 131072}"#,
    );
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let listen = Background::start(mm(
        &gateway,
        "listen",
        &["--json", "--count", "1", "_MM.ADVISORY.>"],
    ));
    // A subscriber that never reads.
    let mut slowpoke = mm_testkit::RawClient::connect(
        gateway.address(),
        mm_testkit::RawClientOptions {
            name: "slowpoke".into(),
            ..mm_testkit::RawClientOptions::mm2(SERVICE)
        },
    );
    slowpoke.subscribe(1, "FLOOD");
    slowpoke.flush();
    // Publish until the slow subscriber is cut off (the kernel's socket buffers take a few MiB
    // first), at most 512 MiB.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let address = gateway.address();
        std::thread::spawn(move || {
            let mut publisher = mm_testkit::RawClient::mm2(address, SERVICE);
            let message = messaging_mesh::Message::new().add_blob("p", vec![0x42; 60_000]);
            for _ in 0..8_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                publisher.publish("FLOOD", "", &message);
            }
        })
    };
    let (code, out) = listen.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    assert_eq!(code, Some(0));
    let value: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(value["subject"], "_MM.ADVISORY.WARN.CLIENT.SLOW_CONSUMER");
    let advisory = &value["message"];
    assert_eq!(advisory["name"], "slowpoke");
    assert_eq!(advisory["service"], SERVICE);
    assert_eq!(advisory["cause"], "bound");
    assert_eq!(advisory["bound"], 131072);
    assert!(
        advisory["dropped_frames"].as_u64().unwrap() > 0,
        "{advisory}"
    );
}
