//! The client against a gateway with security on (docs/security.md): TLS with a CA made by the
//! test, user and password or token, and private replies used without the application knowing.

mod common;

use std::time::Duration;

use common::{PATIENCE, collector, expect};
use messaging_mesh::{
    AsyncConnection, ConnectError, Connection, ConnectionParams, Message, Received,
    ReconnectPolicy, TlsParams,
};
use mm_testkit::pki::TestPki;
use mm_testkit::{GatewayProcess, write_config};

const SERVICE: &str = "SECURE";

fn hash(secret: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(mm_testkit::binary_path("mm-gateway"))
        .arg("passwd")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

struct Secured {
    gateway: GatewayProcess,
    pki: TestPki,
    _config: mm_testkit::ConfigFile,
}

fn secured() -> Secured {
    let pki = TestPki::new("client");
    let server = pki.issue("server", "gateway");
    let config = format!(
        r#"{{
            "Tls": {{"CertFile": "{}", "KeyFile": "{}"}},
            "ServiceSecurity": {{"{SERVICE}": {{"Users": [
                {{"Name": "app", "PasswordHash": "{}",
                  "Publish": {{"Allow": ["Service.>", "Events.>"]}},
                  "Subscribe": {{"Allow": ["Service.>", "Events.>"]}}}},
                {{"Name": "worker", "TokenHash": "{}",
                  "Publish": {{"Allow": []}},
                  "Subscribe": {{"Allow": ["Service.>"]}}}}
            ]}}}}
        }}"#,
        server.cert.display(),
        server.key.display(),
        hash("app-password"),
        hash("worker-token-0123456789"),
    );
    let config = write_config("client-security", &config);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    Secured {
        gateway,
        pki,
        _config: config,
    }
}

fn params(secured: &Secured) -> ConnectionParams {
    ConnectionParams::new(secured.gateway.address_string(), SERVICE)
        .with_client_name("test")
        .with_tls(TlsParams::from_files(secured.pki.ca_file(), None).unwrap())
        .with_reconnect(ReconnectPolicy::disabled())
}

#[test]
fn tls_password_token_and_private_replies() {
    let secured = secured();
    let app = Connection::connect(params(&secured).with_user("app", "app-password")).unwrap();
    let worker =
        Connection::connect(params(&secured).with_token("worker-token-0123456789")).unwrap();
    // The worker answers requests: its only way to publish.
    let responder = worker.clone();
    let _service = worker
        .subscribe("Service.Echo", move |request: &Received| {
            responder.send_reply(request, request.message()).unwrap();
        })
        .unwrap();
    worker.flush(PATIENCE).unwrap();
    for i in 0..20 {
        let reply = app
            .send_request("Service.Echo", &Message::new().add_i32("#", i), PATIENCE)
            .unwrap();
        assert_eq!(reply.message().get_i32("#"), Ok(i));
    }
    // Large messages over TLS.
    let (callback, received) = collector();
    let _events = app.subscribe("Events.>", callback).unwrap();
    app.flush(PATIENCE).unwrap();
    let big = Message::new().add_blob("blob", vec![5u8; 1 << 20]);
    app.send("Events.Big", &big).unwrap();
    assert_eq!(
        expect(&received).message().get_blob("blob").unwrap().len(),
        1 << 20
    );
    // The worker may not publish anything else.
    worker.send("Events.Forged", &Message::new()).unwrap();
    worker.flush(PATIENCE).unwrap();
    assert!(received.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn wrong_credentials_and_untrusted_gateways_fail_clearly() {
    let secured = secured();
    let error = Connection::connect(params(&secured).with_user("app", "nope")).unwrap_err();
    match error {
        ConnectError::Refused { code, .. } => assert_eq!(code, "AUTHENTICATION_FAILED"),
        other => panic!("unexpected {other}"),
    }
    let stranger = TestPki::new("stranger");
    let untrusted = ConnectionParams::new(secured.gateway.address_string(), SERVICE)
        .with_tls(TlsParams::from_files(stranger.ca_file(), None).unwrap())
        .with_user("app", "app-password");
    let error = Connection::connect(untrusted).unwrap_err();
    assert!(matches!(error, ConnectError::Tls { .. }), "{error}");
    // Plaintext to the TLS-only port: refused at once, with the reason.
    let plain = ConnectionParams::new(secured.gateway.address_string(), SERVICE)
        .with_user("app", "app-password");
    match Connection::connect(plain).unwrap_err() {
        ConnectError::Refused { code, .. } => assert_eq!(code, "TLS_REQUIRED"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn the_async_front_end_over_tls() {
    let secured = secured();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection =
            AsyncConnection::connect(params(&secured).with_user("app", "app-password"))
                .await
                .unwrap();
        let mut subscription = connection.subscribe("Events.A").await.unwrap();
        connection.flush(PATIENCE).await.unwrap();
        connection
            .send("Events.A", &Message::new().add_i32("#", 1))
            .await
            .unwrap();
        let received = tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received.message().get_i32("#"), Ok(1));
    });
}
