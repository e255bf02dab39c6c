//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary
//! directory, `postgres` on a free loopback port, stopped and deleted on
//! drop. As root it runs as the `postgres` system user (PostgreSQL refuses
//! root). Debian's `postgresql` package provides the binaries.
//!
//! Also compiled into the end-to-end tests (`tests/common`), so it uses
//! nothing but std.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running cluster.
pub(crate) struct Cluster {
    dir: PathBuf,
    child: Child,
    /// `postgres://squawk@127.0.0.1:PORT/postgres`.
    pub url: String,
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

fn command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Cluster {
    /// Starts a cluster, or `None` when PostgreSQL is not installed and
    /// `SQUAWK_REQUIRE_POSTGRES` is unset (CI sets it, so there a missing
    /// PostgreSQL fails the test instead of skipping it).
    pub(crate) fn start() -> Option<Self> {
        let required = std::env::var_os("SQUAWK_REQUIRE_POSTGRES").is_some();
        let Some(bin) = bin_dir() else {
            assert!(
                !required,
                "SQUAWK_REQUIRE_POSTGRES is set but PostgreSQL is not installed"
            );
            eprintln!("PostgreSQL not installed: SQLite only");
            return None;
        };
        let root = is_root();
        static CLUSTERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("squawk-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if root {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of {}", dir.display());
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), root)
            .args(["-A", "trust", "-U", "squawk", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("postgres://squawk@127.0.0.1:{port}/postgres");
        let end = Instant::now() + Duration::from_secs(30);
        // Ready when it accepts TCP connections.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { dir, child, url })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A fast shutdown (`runuser` does not pass signals on, so ask
        // pg_ctl, which signals the postmaster itself).
        let stopped = bin_dir().is_some_and(|bin| {
            command(&bin.join("pg_ctl"), is_root())
                .args(["stop", "-m", "fast", "-D"])
                .arg(self.dir.join("data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
