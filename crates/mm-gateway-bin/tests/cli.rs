//! The `mm-gateway` command line: first line, signals, configuration errors and warnings.

use std::process::Command;
use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient, binary_path, write_config};

#[test]
fn first_line_names_the_real_port_and_sigterm_exits_zero() {
    let mut gateway = GatewayProcess::start_exact(&["--port", "0"]).unwrap();
    assert_ne!(gateway.port(), 0);
    let mut client = RawClient::mm2(gateway.address(), "TEST");
    client.flush();
    let status = gateway.terminate().expect("exit status");
    assert!(status.success(), "{status:?}");
    // Its connections were closed.
    assert!(client.wait_closed(Duration::from_secs(5)).0);
}

#[test]
fn sigint_exits_zero() {
    let mut gateway = GatewayProcess::start(&[]);
    let _client = RawClient::mm1(gateway.address(), "TEST");
    let status = gateway.interrupt().expect("exit status");
    assert!(status.success(), "{status:?}");
}

#[test]
fn malformed_config_is_a_clear_error_with_exit_code_2() {
    let config = write_config("malformed", "{ \"StartupMeshes\": [ ");
    let output = Command::new(binary_path("mm-gateway"))
        .args(["--port", "0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("malformed configuration file"), "{stderr}");
    assert!(output.stdout.is_empty());

    let config = write_config("invalid", r#"{"StartupMeshes": [{"Name": "A.B"}]}"#);
    let output = Command::new(binary_path("mm-gateway"))
        .args(["--port", "0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("StartupMeshes[0].Name"));

    let output = Command::new(binary_path("mm-gateway"))
        .args(["--port", "0", "--config", "/nonexistent/gateway.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn unknown_keys_and_coordinator_settings_are_warnings() {
    let config = write_config(
        "warnings",
        r#"{
            // first implementation keys
            "CoordinatorGateway": "coordinator:9999",
            "StartupMeshes": [],
            "Flavour": "strawberry"
        }"#,
    );
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    assert!(gateway.wait_for_log(
        "unknown configuration key `Flavour`",
        Duration::from_secs(5)
    ));
    assert!(gateway.wait_for_log(
        "coordinator discovery is not supported",
        Duration::from_secs(5)
    ));
    RawClient::mm2(gateway.address(), "TEST").flush();
}

#[test]
fn address_in_use_is_an_error() {
    let first = GatewayProcess::start(&[]);
    let port = first.port().to_string();
    let output = Command::new(binary_path("mm-gateway"))
        .args(["--port", &port, "--bind", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Printed once, with the address (issue #12).
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
}

#[test]
fn bind_accepts_host_names() {
    let gateway = GatewayProcess::start_exact(&["--port", "0", "--bind", "localhost"]).unwrap();
    // localhost resolves to 127.0.0.1 first where it has an IPv4 address (it does here).
    assert_eq!(gateway.address().ip().to_string(), "127.0.0.1");
    RawClient::mm2(gateway.address(), "TEST").flush();

    let output = Command::new(binary_path("mm-gateway"))
        .args(["--port", "0", "--bind", "no-such-host.invalid"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--bind <ADDR>")
            && stderr.contains("cannot resolve `no-such-host.invalid`"),
        "{stderr}"
    );
}
