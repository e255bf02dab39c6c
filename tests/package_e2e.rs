//! Packages (issue 12): `scripts/package.sh` builds the server's .deb (here
//! from the test build's binary), which installs with `dpkg -i` in a clean
//! Debian 12 (a fresh copy of the debootstrap tarball that
//! `scripts/setup.sh --tests` made: minbase and systemd, not running). Its
//! user, state directory and conffiles are in place, its unit passes
//! `systemd-analyze verify` and a hardening threshold, the installed binary
//! serves a health check as that user, a reinstall keeps an edited config,
//! and purge removes the state and the user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command, time::Duration};

use common::*;

/// Runs `cmd`; panics with its output unless it succeeds. Returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A command inside the Debian at `root`.
fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c
}

#[test]
fn the_server_package_installs_on_a_clean_debian_and_serves() {
    assert_eq!(
        run(Command::new("id").arg("-u")).trim(),
        "0",
        "installing a package into a chroot needs root"
    );
    let out = out_dir("package");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    run(Command::new(repo.join("scripts/package.sh"))
        .args(["--server-only", "--prebuilt"])
        .arg(bin_dir())
        .env("SQUAWK_PACKAGES", &out));
    let version = env!("CARGO_PKG_VERSION");
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    let deb = format!("squawk-server_{version}_{}.deb", arch.trim());
    let fields = run(Command::new("dpkg-deb").arg("-f").arg(out.join(&deb)));
    assert!(fields.contains("Package: squawk-server"), "{fields}");
    assert!(fields.contains(&format!("Version: {version}")), "{fields}");

    // A fresh Debian 12.
    let rootfs = std::env::var("SQUAWK_ROOTFS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/squawk-rootfs/bookworm.tar",
            std::env::var("HOME").unwrap()
        )
    });
    assert!(
        Path::new(&rootfs).exists(),
        "{rootfs} missing: run scripts/setup.sh --tests"
    );
    let root = out.join("debian");
    std::fs::create_dir_all(&root).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xf")
        .arg(&rootfs));
    // As a Debian's / is (a tarball made from a mktemp directory records
    // 0700, and the service's unprivileged user could then run nothing).
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        !root.join("usr/bin/squawk-server").exists(),
        "the Debian is clean"
    );
    std::fs::copy(out.join(&deb), root.join("tmp").join(&deb)).unwrap();
    let installed = format!("/tmp/{deb}");
    run(&mut chroot(&root, &["dpkg", "-i", &installed]));

    // What the package put in place.
    let user = run(&mut chroot(&root, &["getent", "passwd", "squawk"]));
    assert!(
        user.trim_end()
            .ends_with(":/var/lib/squawk:/usr/sbin/nologin"),
        "a system user without a shell: {user}"
    );
    let state = run(&mut chroot(
        &root,
        &["stat", "-c", "%U %G %a", "/var/lib/squawk"],
    ));
    assert_eq!(state.trim(), "squawk squawk 750");
    let config = run(&mut chroot(
        &root,
        &["stat", "-c", "%U %G %a", "/etc/squawk/server.toml"],
    ));
    assert_eq!(
        config.trim(),
        "root squawk 640",
        "readable by the service only"
    );
    let conffiles = run(&mut chroot(
        &root,
        &["dpkg-query", "-W", "-f=${Conffiles}", "squawk-server"],
    ));
    assert!(conffiles.contains("/etc/squawk/server.toml"), "{conffiles}");
    assert!(
        conffiles.contains("/etc/default/squawk-server"),
        "{conffiles}"
    );

    // The unit: valid, and hardened (systemd's exposure score, 0 to 10).
    let unit = "squawk-server.service";
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(unit));
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=25"])
        .arg(format!("--root={}", root.display()))
        .arg(unit));
    let score = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default()
        .to_string();
    eprintln!("{score}");

    // The installed binary, as its user with the installed config, serves.
    let port = free_port().to_string();
    let http = format!("127.0.0.1:{port}");
    let serve = |root: &Path| {
        let mut cmd = Command::new("chroot");
        cmd.arg("--userspec=squawk:squawk").arg(root).args([
            "/usr/bin/squawk-server",
            "--config",
            "/etc/squawk/server.toml",
            "--http",
            &http,
            "--media",
            "127.0.0.1:0",
        ]);
        let mut p = Proc::spawn("installed", &mut cmd);
        p.expect_line(Duration::from_secs(20), "ready line", |l| {
            l.starts_with("squawk-server ready")
        });
        p
    };
    let server = serve(&root);
    let health = get(&http, "/health");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert!(health.contains(version), "{health}");
    drop(server);
    assert!(
        root.join("var/lib/squawk/squawk.db").exists(),
        "state in /var/lib/squawk"
    );

    // Reinstalling (an upgrade's path) keeps an operator's edit and the state.
    let edited = std::fs::read_to_string(root.join("etc/squawk/server.toml")).unwrap()
        + "channels = [\"ops\"]\n";
    std::fs::write(root.join("etc/squawk/server.toml"), edited).unwrap();
    run(&mut chroot(&root, &["dpkg", "-i", &installed]));
    let kept = std::fs::read_to_string(root.join("etc/squawk/server.toml")).unwrap();
    assert!(kept.contains("channels = [\"ops\"]"), "the edit survives");
    assert!(root.join("var/lib/squawk/squawk.db").exists());
    let server = serve(&root);
    let metrics = get(&http, "/metrics");
    drop(server);
    assert!(
        metrics.contains("squawk_channels 1"),
        "the edited config's fixed channel exists: {metrics}"
    );

    // Purge: state and user gone.
    run(&mut chroot(&root, &["dpkg", "--purge", "squawk-server"]));
    assert!(!root.join("var/lib/squawk").exists());
    assert!(!root.join("usr/bin/squawk-server").exists());
    let gone = chroot(&root, &["getent", "passwd", "squawk"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the user is removed on purge");
    let _ = std::fs::remove_dir_all(&root);
}

/// The body of `GET path` from `http` (HTTP/1.1, not chunked).
fn get(http: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).expect("connect http");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(body)
}
