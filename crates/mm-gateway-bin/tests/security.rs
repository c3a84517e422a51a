//! Security end to end (docs/security.md): real gateways, raw clients, certificates made by the
//! test (rcgen). Passwords and tokens, permissions, private replies, per-user limits, TLS, and
//! the defaults.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mm_testkit::pki::TestPki;
use mm_testkit::{GatewayProcess, RawClient, RawClientOptions, binary_path, write_config};
use mm_wire::handshake::ConnectOptions;
use mm_wire::{Action, Frame, Message};

const SERVICE: &str = "ORDERS";

/// `mm-gateway passwd` with `secret` on stdin: the hash it prints.
fn hash(secret: &str) -> String {
    let mut child = Command::new(binary_path("mm-gateway"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mm-gateway passwd");
    writeln!(child.stdin.take().expect("stdin"), "{secret}").expect("write password");
    let output = child.wait_with_output().expect("passwd output");
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

/// Options of an MM/2 client with credentials.
fn with_user(user: &str, password: &str) -> RawClientOptions {
    let mut options = RawClientOptions::mm2(SERVICE);
    options.options.user = Some(user.into());
    options.options.password = Some(password.into());
    options
}

fn with_token(token: &str) -> RawClientOptions {
    let mut options = RawClientOptions::mm2(SERVICE);
    options.options.token = Some(token.into());
    options
}

/// Connects without waiting for ACK and returns the first frame and whether the gateway then
/// closed the connection.
fn refused(client: &mut RawClient) -> (Frame, bool) {
    let (closed, frames) = client.wait_closed(Duration::from_secs(10));
    let first = frames.into_iter().next().expect("a frame before the close");
    (first, closed)
}

fn code(frame: &Frame) -> String {
    frame
        .message()
        .ok()
        .and_then(|body| body.try_string("code").map(str::to_owned))
        .unwrap_or_default()
}

fn expect_error(client: &mut RawClient, expected_code: &str, subject: &str) {
    let frame = client.expect_action(Action::Error);
    assert_eq!(code(&frame), expected_code, "{frame:?}");
    assert_eq!(frame.subject(), subject.as_bytes());
}

/// A gateway whose service ORDERS has users (alice: password; billing: token; admin: password,
/// may read stats) and anonymous access limited to `Public.>`.
fn secured_gateway(token: &str) -> (GatewayProcess, mm_testkit::ConfigFile) {
    let config = format!(
        r#"{{
            "ServiceSecurity": {{
                "{SERVICE}": {{
                    "Users": [
                        {{"Name": "alice", "PasswordHash": "{alice}",
                          "Publish": {{"Allow": ["Orders.>", "Service.>"], "Deny": ["Orders.Secret.>"]}},
                          "Subscribe": {{"Allow": ["Orders.>", "Service.>"]}}}},
                        {{"Name": "billing", "TokenHash": "{billing}",
                          "Publish": {{"Allow": ["Billing.>"]}},
                          "Subscribe": {{"Allow": ["Orders.*", "Service.>"]}}}},
                        {{"Name": "admin", "PasswordHash": "{admin}",
                          "Publish": {{"Allow": [">", "_MM.STATS"]}},
                          "Subscribe": {{"Allow": [">", "_INBOX.>", "_MM.>"]}}}},
                        {{"Name": "limited", "PasswordHash": "{limited}",
                          "MaxConnections": 1, "MaxSubscriptions": 2, "MaxFrameBytes": 4096}}
                    ],
                    "Anonymous": {{"Publish": {{"Allow": ["Public.>"]}},
                                   "Subscribe": {{"Allow": ["Public.>"]}}}}
                }},
                "CLOSED": {{"Users": []}}
            }}
        }}"#,
        alice = hash("wonderland"),
        billing = hash(token),
        admin = hash("root-pw"),
        limited = hash("small"),
    );
    let config = write_config("security", &config);
    let gateway = GatewayProcess::start(&["--config", config.to_str().expect("UTF-8 path")]);
    (gateway, config)
}

#[test]
fn passwords_and_tokens() {
    let token = "4f1c2b8e9a7d6c5b4a39281706f5e4d3";
    let (gateway, _config) = secured_gateway(token);
    let address = gateway.address();
    let started = Instant::now();
    let alice = RawClient::connect(address, with_user("alice", "wonderland"));
    let prefix = alice
        .ack()
        .and_then(|ack| ack.inbox_prefix.clone())
        .expect("an inbox prefix in the ACK");
    assert!(
        prefix.starts_with("_INBOX.") && prefix.len() >= 7 + 22,
        "{prefix}"
    );
    let billing = RawClient::connect(address, with_token(token));
    assert!(billing.ack().is_some());
    for options in [
        with_user("alice", "wrong"),
        with_user("mallory", "wonderland"),
        with_token("not-the-token"),
    ] {
        let mut options = options;
        options.wait_for_ack = false;
        let mut client = RawClient::connect(address, options);
        let (frame, closed) = refused(&mut client);
        assert_eq!(frame.action(), Some(Action::Error));
        assert_eq!(code(&frame), "AUTHENTICATION_FAILED");
        assert!(closed, "closed after AUTHENTICATION_FAILED");
    }
    // A service with no anonymous access refuses a client without credentials, with a reason.
    let mut options = RawClientOptions::mm2("CLOSED");
    options.wait_for_ack = false;
    let mut anonymous = RawClient::connect(address, options);
    let (frame, closed) = refused(&mut anonymous);
    assert_eq!(code(&frame), "AUTHENTICATION_FAILED");
    let text = frame
        .message()
        .unwrap()
        .get_string("text")
        .unwrap()
        .to_owned();
    assert!(text.contains("requires authentication"), "{text}");
    assert!(closed);
    // Counted, and logged.
    let mut admin = RawClient::connect(address, with_user("admin", "root-pw"));
    let stats = admin.stats(90);
    assert_eq!(stats.get_u64("authentication_failures").unwrap(), 4);
    assert!(gateway.wait_for_log("client authentication failed", Duration::from_secs(5)));
    assert!(gateway.log().contains("user `mallory`"));
    // Verifying hashes is costly on purpose, but not slow.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn publish_and_subscribe_by_pattern() {
    let (gateway, _config) = secured_gateway("tok-tok-tok-tok-tok");
    let address = gateway.address();
    let mut alice = RawClient::connect(address, with_user("alice", "wonderland"));
    let mut billing = RawClient::connect(address, with_token("tok-tok-tok-tok-tok"));
    // Allowed subscriptions.
    alice.subscribe(1, "Orders.>");
    billing.subscribe(1, "Orders.*");
    // Refused: outside the allow list, or able to match a denied subject, or `>`.
    billing.subscribe(2, "Orders.>");
    expect_error(&mut billing, "PERMISSION_DENIED", "Orders.>");
    billing.subscribe(3, ">");
    expect_error(&mut billing, "PERMISSION_DENIED", ">");
    alice.subscribe(4, "Prices.*");
    expect_error(&mut alice, "PERMISSION_DENIED", "Prices.*");
    billing.flush();
    alice.flush();
    // Allowed publish reaches both.
    alice.publish("Orders.New", "", &Message::new().add_i32("#", 1));
    assert_eq!(
        alice.expect_action(Action::SendMessage).subject(),
        b"Orders.New"
    );
    assert_eq!(
        billing.expect_action(Action::SendMessage).subject(),
        b"Orders.New"
    );
    // Denied publishes: refused with the subject, nothing delivered, the connection stays.
    alice.publish("Orders.Secret.Plan", "", &Message::new());
    expect_error(&mut alice, "PERMISSION_DENIED", "Orders.Secret.Plan");
    billing.publish("Orders.Forged", "", &Message::new());
    expect_error(&mut billing, "PERMISSION_DENIED", "Orders.Forged");
    // The same denied subject again: still refused (decisions are cached, not forgotten).
    billing.publish("Orders.Forged", "", &Message::new());
    expect_error(&mut billing, "PERMISSION_DENIED", "Orders.Forged");
    alice.assert_nothing_pending();
    billing.assert_nothing_pending();
    // Repeating an allowed subject many times (the memo path) keeps delivering.
    for i in 0..100 {
        alice.publish("Orders.New", "", &Message::new().add_i32("#", i));
    }
    for i in 0..100 {
        let frame = billing.expect_action(Action::SendMessage);
        assert_eq!(frame.message().unwrap().get_i32("#").unwrap(), i);
        let own = alice.expect_action(Action::SendMessage);
        assert_eq!(own.message().unwrap().get_i32("#").unwrap(), i);
    }
    // Anonymous clients, MM/2 and MM/1, get the anonymous permissions.
    let mut anonymous = RawClient::mm2(address, SERVICE);
    anonymous.subscribe(1, "Orders.*");
    expect_error(&mut anonymous, "PERMISSION_DENIED", "Orders.*");
    let mut legacy = RawClient::mm1(address, SERVICE);
    legacy.subscribe(1, "Public.News");
    legacy.publish("Orders.New", "", &Message::new());
    anonymous.subscribe(2, "Public.>");
    anonymous.flush();
    legacy.publish("Public.News", "", &Message::new().add_i32("#", 7));
    assert_eq!(
        legacy.expect_action(Action::SendMessage).subject(),
        b"Public.News"
    );
    assert_eq!(
        anonymous.expect_action(Action::SendMessage).subject(),
        b"Public.News"
    );
    // The MM/1 client's refused publish reached nobody and was logged.
    alice.assert_nothing_pending();
    assert!(gateway.wait_for_log("PERMISSION_DENIED", Duration::from_secs(5)));
    let mut admin = RawClient::connect(address, with_user("admin", "root-pw"));
    assert!(admin.stats(90).get_u64("permission_denied").unwrap() >= 6);
}

#[test]
fn private_replies() {
    let (gateway, _config) = secured_gateway("tok-tok-tok-tok-tok");
    let address = gateway.address();
    let mut requester = RawClient::connect(address, with_user("alice", "wonderland"));
    let mut responder = RawClient::connect(address, with_token("tok-tok-tok-tok-tok"));
    let mut eavesdropper = RawClient::connect(address, with_user("alice", "wonderland"));
    // Nobody may listen to every inbox, nor to another client's.
    eavesdropper.subscribe(1, "_INBOX.>");
    expect_error(&mut eavesdropper, "PERMISSION_DENIED", "_INBOX.>");
    let prefix = requester.ack().unwrap().inbox_prefix.clone().unwrap();
    let inbox = format!("{prefix}.*");
    eavesdropper.subscribe(2, &inbox);
    expect_error(&mut eavesdropper, "PERMISSION_DENIED", &inbox);
    // A request may not carry someone else's inbox as its reply subject.
    eavesdropper.publish("Service.Add", &format!("{prefix}.9"), &Message::new());
    expect_error(
        &mut eavesdropper,
        "PERMISSION_DENIED",
        &format!("{prefix}.9"),
    );
    // Its own inbox is fine.
    requester.subscribe(1, &inbox);
    responder.subscribe(1, "Service.Add");
    requester.flush();
    responder.flush();
    let reply_to = format!("{prefix}.1");
    requester.publish("Service.Add", &reply_to, &Message::new().add_i32("#", 1));
    let request = responder.expect_action(Action::SendMessage);
    assert_eq!(request.reply_subject(), reply_to.as_bytes());
    // Publishing into the inbox without having received a request there: refused.
    eavesdropper.publish(&reply_to, "", &Message::new().add_i32("#", 666));
    expect_error(&mut eavesdropper, "PERMISSION_DENIED", &reply_to);
    // Answering the request received: allowed, once.
    responder.publish(&reply_to, "", &Message::new().add_i32("#", 2));
    let reply = requester.expect_action(Action::SendMessage);
    assert_eq!(reply.message().unwrap().get_i32("#").unwrap(), 2);
    responder.publish(&reply_to, "", &Message::new().add_i32("#", 3));
    expect_error(&mut responder, "PERMISSION_DENIED", &reply_to);
    requester.assert_nothing_pending();
    eavesdropper.assert_nothing_pending();
    // Stats need permission.
    eavesdropper.publish(
        "_MM.STATS",
        &format!(
            "{}.5",
            eavesdropper.ack().unwrap().inbox_prefix.clone().unwrap()
        ),
        &Message::new(),
    );
    expect_error(&mut eavesdropper, "PERMISSION_DENIED", "_MM.STATS");
    let mut admin = RawClient::connect(address, with_user("admin", "root-pw"));
    let stats = admin.stats(90);
    assert!(stats.get_string("gateway_id").is_ok());
}

#[test]
fn per_user_limits() {
    let (gateway, _config) = secured_gateway("tok-tok-tok-tok-tok");
    let address = gateway.address();
    let mut limited = RawClient::connect(address, with_user("limited", "small"));
    assert_eq!(limited.ack().unwrap().max_frame, 4096);
    let mut options = with_user("limited", "small");
    options.wait_for_ack = false;
    let mut second = RawClient::connect(address, options);
    let (frame, closed) = refused(&mut second);
    assert_eq!(code(&frame), "LIMIT_EXCEEDED");
    assert!(closed);
    limited.subscribe(1, "A");
    limited.subscribe(2, "B");
    limited.subscribe(3, "C");
    expect_error(&mut limited, "LIMIT_EXCEEDED", "C");
    limited.publish("A", "", &Message::new().add_blob("big", vec![0u8; 8192]));
    let (closed, frames) = limited.wait_closed(Duration::from_secs(10));
    assert!(closed);
    assert!(frames.iter().any(|frame| code(frame) == "FRAME_TOO_LARGE"));
    // Once it is gone, the user may connect again.
    let again = mm_testkit::wait_until(Duration::from_secs(10), || {
        let mut options = with_user("limited", "small");
        options.wait_for_ack = false;
        let mut client = RawClient::connect(address, options);
        client
            .recv(Duration::from_secs(5))
            .is_some_and(|frame| frame.action() == Some(Action::Ack))
    });
    assert!(again);
}

#[test]
fn mm1_clients_reach_only_anonymous_services() {
    let (gateway, _config) = secured_gateway("tok-tok-tok-tok-tok");
    let address = gateway.address();
    let mut legacy = RawClient::mm1(address, SERVICE);
    legacy.subscribe(1, "Public.A");
    legacy.publish("Public.A", "", &Message::new().add_i32("#", 1));
    assert_eq!(
        legacy.expect_action(Action::SendMessage).subject(),
        b"Public.A"
    );
    let mut options = RawClientOptions::mm1("CLOSED");
    options.wait_for_ack = false;
    let mut refused_client = RawClient::connect(address, options);
    let (closed, frames) = refused_client.wait_closed(Duration::from_secs(10));
    assert!(
        closed,
        "an MM/1 client of a service without anonymous access is closed"
    );
    assert!(frames.is_empty(), "MM/1 never sees an ERROR: {frames:?}");
    // A gateway without security settings serves MM/1 as before.
    let open = GatewayProcess::start(&[]);
    let mut legacy = RawClient::mm1(open.address(), "ANY");
    legacy.subscribe(1, ">");
    legacy.publish("X.Y", "", &Message::new());
    assert_eq!(legacy.expect_action(Action::SendMessage).subject(), b"X.Y");
}

#[test]
fn open_gateways_warn_when_reachable_beyond_loopback() {
    let open = GatewayProcess::start_exact(&["--port", "0", "--bind", "0.0.0.0"]).unwrap();
    assert!(open.wait_for_log(
        "listening on a non-loopback address without authentication",
        Duration::from_secs(10)
    ));
    let local = GatewayProcess::start(&[]);
    // Loopback: no warning (the service that answers proves it started).
    let mut client = RawClient::mm2(local.address(), "X");
    client.flush();
    assert!(!local.log().contains("without authentication"));
    let config = write_config(
        "closed",
        r#"{"ServiceSecurity": {"*": {"Anonymous": {"Subscribe": {"Allow": ["Public.>"]}}}}}"#,
    );
    let secured = GatewayProcess::start_exact(&[
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--config",
        config.to_str().unwrap(),
    ])
    .unwrap();
    let mut client = RawClient::mm2(secured.address(), "X");
    client.flush();
    assert!(!secured.log().contains("without authentication"));
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

fn tls_gateway(pki: &TestPki, extra: &str) -> (GatewayProcess, mm_testkit::ConfigFile) {
    let server = pki.issue("server", "gateway");
    let config = format!(
        r#"{{
            "Tls": {{"CertFile": "{}", "KeyFile": "{}", "ClientCaFile": "{}"{extra}}},
            "ServiceSecurity": {{"{SERVICE}": {{
                "Users": [
                    {{"Name": "alice", "PasswordHash": "{}"}},
                    {{"Name": "bob", "Certificate": "bob.example",
                      "Publish": {{"Allow": ["Bob.>"]}}, "Subscribe": {{"Allow": ["Bob.>"]}}}}
                ]}}}}
        }}"#,
        server.cert.display(),
        server.key.display(),
        pki.ca_file().display(),
        hash("wonderland"),
    );
    let config = write_config("tls", &config);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    (gateway, config)
}

#[test]
fn tls_with_passwords_and_client_certificates() {
    let pki = TestPki::new("tls");
    let (gateway, _config) = tls_gateway(&pki, "");
    let address = gateway.address();
    // A client that trusts the CA, with a password.
    let mut alice = RawClient::connect_tls(
        address,
        pki.client_config(None),
        with_user("alice", "wonderland"),
    )
    .expect("TLS handshake");
    alice.subscribe(1, "A.B");
    alice.publish(
        "A.B",
        "",
        &Message::new().add_blob("big", vec![7u8; 200_000]),
    );
    let frame = alice.expect_action(Action::SendMessage);
    assert_eq!(
        frame.message().unwrap().get_blob("big").unwrap().len(),
        200_000
    );
    // A client certificate from the client CA names user bob.
    let bob_files = pki.issue("bob", "bob.example");
    let mut bob = RawClient::connect_tls(
        address,
        pki.client_config(Some(&bob_files)),
        RawClientOptions::mm2(SERVICE),
    )
    .expect("TLS handshake with a client certificate");
    bob.subscribe(1, "Bob.x");
    bob.subscribe(2, "A.B");
    expect_error(&mut bob, "PERMISSION_DENIED", "A.B");
    // A client that does not trust the gateway's certificate fails its handshake.
    let stranger = TestPki::new("stranger");
    let started = Instant::now();
    let error = RawClient::open_tls(address, stranger.client_config(None))
        .err()
        .expect("an untrusted gateway certificate fails the handshake");
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client certificate from another CA fails the handshake at the gateway.
    let foreign = stranger.issue("mallory", "bob.example");
    let mut options = RawClientOptions::mm2(SERVICE);
    options.wait_for_ack = false;
    match RawClient::connect_tls(address, pki.client_config(Some(&foreign)), options) {
        Err(_) => {}
        Ok(mut client) => {
            // TLS 1.3: the client finishes first and learns of the refusal on its next read.
            let (closed, frames) = client.wait_closed(Duration::from_secs(5));
            assert!(closed && frames.is_empty(), "{frames:?}");
        }
    }
    assert!(gateway.wait_for_log("TLS handshake failed", Duration::from_secs(5)));
    // Plaintext to the TLS-only port: refused at once, with a clear ERROR and a log line.
    let started = Instant::now();
    let mut options = RawClientOptions::mm2(SERVICE);
    options.wait_for_ack = false;
    let mut plain = RawClient::connect(address, options);
    let (frame, closed) = refused(&mut plain);
    assert_eq!(code(&frame), "TLS_REQUIRED");
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(gateway.wait_for_log(
        "plaintext connection on a TLS-only port",
        Duration::from_secs(5)
    ));
}

#[test]
fn tls_client_on_a_plaintext_port_fails_fast() {
    let pki = TestPki::new("plain");
    let gateway = GatewayProcess::start(&[]);
    let started = Instant::now();
    let result = RawClient::open_tls(gateway.address(), pki.client_config(None));
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(gateway.wait_for_log(
        "TLS connection on a port without TLS",
        Duration::from_secs(5)
    ));
}

#[test]
fn required_client_certificates() {
    let pki = TestPki::new("mtls");
    let (gateway, _config) = tls_gateway(&pki, r#", "RequireClientCertificate": true"#);
    let address = gateway.address();
    let mut options = with_user("alice", "wonderland");
    options.wait_for_ack = false;
    let mut without = RawClient::connect_tls(address, pki.client_config(None), options)
        .expect("the handshake itself succeeds without a certificate");
    let (frame, closed) = refused(&mut without);
    assert_eq!(code(&frame), "AUTHENTICATION_FAILED");
    assert!(closed);
    let bob_files = pki.issue("bob", "bob.example");
    let bob = RawClient::connect_tls(
        address,
        pki.client_config(Some(&bob_files)),
        RawClientOptions::mm2(SERVICE),
    );
    assert!(bob.is_ok());
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let pki = TestPki::new("first");
    let (mut gateway, config) = tls_gateway(&pki, "");
    let address = gateway.address();
    let mut kept = RawClient::connect_tls(
        address,
        pki.client_config(None),
        with_user("alice", "wonderland"),
    )
    .unwrap();
    kept.subscribe(1, "Kept");
    kept.flush();
    // New certificate files from a new CA, in the same places; then SIGHUP.
    let next = TestPki::new("second");
    let text = std::fs::read_to_string(&config).unwrap();
    let server = next.issue("server", "gateway");
    let old_server = pki.directory().join("server.pem");
    let updated = text
        .replace(
            &old_server.display().to_string(),
            &server.cert.display().to_string(),
        )
        .replace(
            &pki.directory().join("server.key").display().to_string(),
            &server.key.display().to_string(),
        );
    std::fs::write(&config, updated).unwrap();
    // SAFETY: kill only sends a signal to the gateway child this test started.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGHUP);
    }
    assert!(gateway.wait_for_log("security settings reloaded", Duration::from_secs(10)));
    // New connections see the new certificate; the old CA no longer works.
    let fresh = RawClient::connect_tls(
        address,
        next.client_config(None),
        with_user("alice", "wonderland"),
    );
    assert!(fresh.is_ok());
    assert!(RawClient::open_tls(address, pki.client_config(None)).is_err());
    // The connection from before is still there.
    kept.publish("Kept", "", &Message::new().add_i32("#", 1));
    assert_eq!(kept.expect_action(Action::SendMessage).subject(), b"Kept");
    assert!(gateway.is_running());
    let _ = gateway.terminate();
}

#[test]
fn connect_options_carry_credentials() {
    let options = ConnectOptions {
        user: Some("u".into()),
        password: Some("p".into()),
        token: Some("t".into()),
        ..ConnectOptions::mm2("x")
    };
    let (back, _) = ConnectOptions::from_message(&options.to_message());
    assert_eq!(back, options);
}
