//! A PostgreSQL server of a test's own (initdb into a scratch directory, a free port), which the
//! test may stop and start without disturbing the server the rest of the suite shares.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding initdb and pg_ctl: `GRIDFLOW_PG_BINDIR`, else `pg_config --bindir`,
/// else the newest `/usr/lib/postgresql/*/bin` (Debian's layout).
fn server_binaries() -> PathBuf {
    let has_initdb = |dir: &Path| dir.join("initdb").exists();
    if let Ok(dir) = std::env::var("GRIDFLOW_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|dir| has_initdb(dir));
    if let Some(dir) = from_pg_config {
        return dir;
    }
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_initdb(dir))
        .collect();
    installed.sort_by_key(|dir| {
        dir.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
    });
    installed.pop().expect(
        "no PostgreSQL server binaries (initdb, pg_ctl): ./scripts/test installs them, or set \
         GRIDFLOW_PG_BINDIR",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// A server in its own data directory, stopped and removed when dropped.
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
}

impl PrivatePostgres {
    /// Creates and starts a server for `tag`.
    pub fn start(tag: &str) -> PrivatePostgres {
        let root = std::env::temp_dir().join(format!("gridflow-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivatePostgres {
            bin: server_binaries(),
            data: root.join("data"),
            port,
            as_root: running_as_root(),
        };
        if server.as_root {
            // PostgreSQL refuses to run as root: the server runs as the postgres user.
            let chown = Command::new("chown")
                .args(["postgres:"])
                .arg(&root)
                .status()
                .unwrap();
            assert!(
                chown.success(),
                "cannot hand {} to postgres",
                root.display()
            );
        }
        let data = server.data.display().to_string();
        server.expect_success(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        server.start_again();
        server
    }

    /// A connection URL for the server.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped server and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off",
            self.port,
            self.data.display()
        );
        let log = self.data.with_file_name("server.log").display().to_string();
        let data = self.data.display().to_string();
        self.expect_success(
            "pg_ctl",
            &["start", "-w", "-D", &data, "-l", &log, "-o", &options],
        );
    }

    /// Stops the server at once, as a crash would (no shutdown checkpoint); clients lose their
    /// connections.
    pub fn crash(&self) {
        let data = self.data.display().to_string();
        self.expect_success("pg_ctl", &["stop", "-m", "immediate", "-D", &data]);
    }

    fn command(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).output().unwrap()
    }

    fn expect_success(&self, program: &str, args: &[&str]) {
        let output = self.command(program, args);
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.command("pg_ctl", &["stop", "-m", "immediate", "-D", &data]);
        if let Some(root) = self.data.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
