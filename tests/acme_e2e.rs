//! ACME (issue 12): the server obtains its HTTPS certificate from Debian's
//! `pebble` (a test ACME CA) on loopback, which validates the order with a
//! real TLS-ALPN-01 challenge against the server's port. A bot that trusts
//! pebble's root connects over `wss://`; one that does not is refused. With
//! pebble gone, a restarted server deploys the certificate from its cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::*;

/// `squawk-bot --server wss://localhost:PORT/ws [--ca ROOT] listen` for a
/// second: (exit code, stderr).
fn try_connect(port: u16, ca: Option<&Path>) -> (i32, String) {
    let server = format!("wss://localhost:{port}/ws");
    match ca {
        Some(ca) => try_listen(&server, &["--ca", ca.to_str().unwrap()]),
        None => try_listen(&server, &[]),
    }
}

/// Retries [`try_connect`] until it succeeds (the order, validation and
/// issuance take a few seconds); panics with the last error after `limit`.
fn connect_when_issued(port: u16, ca: &Path, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (code, err) = try_connect(port, Some(ca));
        if code == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no certificate within {limit:?}; last error: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until something accepts TCP connections on `port`.
fn wait_listening(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} not listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_server_gets_its_certificate_from_an_acme_ca() {
    let out = out_dir("acme");
    let (acme_port, mgmt_port, port) = (free_port(), free_port(), free_port());
    // pebble's own HTTPS certificate (its directory and management API).
    let (pebble_cert, pebble_key) = squawk_server::tls::ensure_self_signed(
        &out.join("pebble"),
        &["localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": pebble_cert,
        "privateKey": pebble_key,
        // Where pebble validates: the server's HTTPS port (TLS-ALPN-01).
        "httpPort": 5002,
        "tlsPort": port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    let config_path = out.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let pebble = Proc::spawn(
        "pebble",
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            // No random pauses before validation, no deliberately
            // rejected nonces: the run is as fast as the protocol.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0"),
    );
    wait_listening(acme_port, "pebble");

    let data = out.join("server-data");
    let directory = format!("https://127.0.0.1:{acme_port}/dir");
    let args = [
        "--acme",
        "localhost",
        "--acme-email",
        "ops@example.org",
        "--acme-directory",
        &directory,
        "--acme-ca",
        pebble_cert.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let http = format!("127.0.0.1:{port}");
    let server = TestServer::start_at(&http, &args);

    // pebble's root, which signs what it issues (made at its start).
    let root = out.join("pebble-root.pem");
    let fetch = Command::new("python3")
        .arg("-c")
        .arg(
            "import ssl, sys, urllib.request; \
             ctx = ssl.create_default_context(cafile=sys.argv[2]); \
             sys.stdout.write(urllib.request.urlopen(sys.argv[1], context=ctx).read().decode())",
        )
        .arg(format!("https://127.0.0.1:{mgmt_port}/roots/0"))
        .arg(&pebble_cert)
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    std::fs::write(&root, &fetch.stdout).unwrap();

    let took = connect_when_issued(port, &root, Duration::from_secs(60));
    eprintln!("certificate issued and used after {took:?}");
    let (code, err) = try_connect(port, None);
    assert_ne!(code, 0, "pebble's root is not a system root");
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let cached = std::fs::read_dir(data.join("acme")).unwrap().count();
    assert!(cached >= 2, "the account and the certificate are cached");

    // Without the CA, a restart deploys the cached certificate.
    drop(server);
    drop(pebble);
    let _server = TestServer::start_at(&http, &args);
    let took = connect_when_issued(port, &root, Duration::from_secs(10));
    eprintln!("cached certificate in use {took:?} after the restart");
}
