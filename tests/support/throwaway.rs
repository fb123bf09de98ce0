//! A PostgreSQL server of a test's own (initdb in a temporary directory, a free port), which the
//! test may stop and start at will without disturbing the shared server other tests use.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A running throwaway PostgreSQL server; stopped and deleted on drop.
pub struct ThrowawayPostgres {
    bindir: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`: `TEST_POSTGRES_BINDIR`, `PATH`, or the newest
/// `/usr/lib/postgresql/*/bin`.
fn bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TEST_POSTGRES_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl ThrowawayPostgres {
    /// Starts a fresh server, or `None` (with a message) when PostgreSQL's programs are not
    /// installed here.
    #[must_use]
    pub fn start() -> Option<Self> {
        let Some(bindir) = bindir() else {
            eprintln!("PostgreSQL's initdb/pg_ctl not found (set TEST_POSTGRES_BINDIR): skipping");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        // initdb and postgres refuse to run as root.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the throwaway directory failed");
        }
        let server = Self {
            bindir,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        server.start_again();
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A PostgreSQL program, run as the `postgres` user when the test runs as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .expect("PostgreSQL program runs");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// (Re)starts the server on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// The URL of its `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The directory of the server's files.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}
