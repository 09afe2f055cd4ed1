//! A throwaway MariaDB server for development, demos and tests.
//!
//! It runs Debian's `mariadb-server` binaries as a child process with its own data directory
//! on a free 127.0.0.1 port, with the binlog configured the way change-data capture needs it
//! (`binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`). Nothing
//! depends on a server already running on the machine, and dropping the handle stops the
//! server and (unless a persistent directory was asked for) removes its files.
//!
//! ```no_run
//! let db = cdc_localdb::LocalMariaDb::start().expect("mariadb");
//! db.execute("CREATE DATABASE demo").expect("sql");
//! println!("mysql://{}@127.0.0.1:{}", db.user(), db.port());
//! ```

pub mod process;
pub mod workload;

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to accept connections. Installing the system tables
/// and starting InnoDB on a busy two-core machine takes a few seconds; a minute is generous.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Errors of starting, querying or stopping the local server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalDbError {
    #[error(
        "MariaDB server binary `{name}` not found in PATH, /usr/sbin or /usr/bin; \
         install Debian's package with `apt-get install -y mariadb-server`"
    )]
    BinaryNotFound { name: &'static str },
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("could not run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed { command: String, status: String, output: String },
    #[error("MariaDB exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ExitedEarly { status: String, log: PathBuf, tail: String },
    #[error("MariaDB did not accept connections within {seconds} s; last lines of {log}:\n{tail}")]
    StartTimeout { seconds: u64, log: PathBuf, tail: String },
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoFreePort(io::Error),
}

/// Settings of a local server. `Default` gives a temporary directory, a free port and a
/// `cdc` user with the privileges a binlog reader needs.
#[derive(Debug, Clone)]
pub struct LocalMariaDbOptions {
    /// Keep the server's files here (and reuse them on the next start) instead of a
    /// temporary directory that disappears with the handle.
    pub data_root: Option<PathBuf>,
    /// TCP port on 127.0.0.1; a free one is picked when `None`.
    pub port: Option<u16>,
    /// Account created for clients, with SELECT, RELOAD, SHOW DATABASES,
    /// REPLICATION SLAVE and REPLICATION CLIENT on everything.
    pub user: String,
    pub password: String,
    /// `server_id` of this server; a binlog reader must use a different one.
    pub server_id: u32,
    /// Extra `mariadbd` arguments, e.g. `--gtid-strict-mode=1` or
    /// `--binlog-format=STATEMENT` for tests of pre-flight checks.
    pub extra_args: Vec<String>,
}

impl Default for LocalMariaDbOptions {
    fn default() -> Self {
        Self {
            data_root: None,
            port: None,
            user: "cdc".to_owned(),
            password: "cdc-local-password".to_owned(),
            server_id: 1,
            extra_args: Vec::new(),
        }
    }
}

/// A running local MariaDB. Stops the server when dropped.
#[derive(Debug)]
pub struct LocalMariaDb {
    child: Option<Child>,
    root: PathBuf,
    // Held only so the directory is removed when the server is dropped.
    _temp: Option<tempfile::TempDir>,
    port: u16,
    user: String,
    password: String,
    client: PathBuf,
}

impl LocalMariaDb {
    /// Starts a server with default options.
    pub fn start() -> Result<Self, LocalDbError> {
        Self::start_with(LocalMariaDbOptions::default())
    }

    /// Starts a server, waits until it accepts connections and creates the client account.
    pub fn start_with(options: LocalMariaDbOptions) -> Result<Self, LocalDbError> {
        let server = find_binary(&["mariadbd", "mysqld"], "mariadbd")?;
        let install_db = find_binary(&["mariadb-install-db", "mysql_install_db"], "mariadb-install-db")?;
        let client = find_binary(&["mariadb", "mysql"], "mariadb")?;

        let (root, temp) = match &options.data_root {
            // The server resolves relative paths against its own base directory (/usr), not ours.
            Some(path) => (
                std::path::absolute(path).map_err(|source| LocalDbError::DataDir { path: path.clone(), source })?,
                None,
            ),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("cdc-mariadb-")
                    .tempdir()
                    .map_err(|source| LocalDbError::DataDir { path: std::env::temp_dir(), source })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let datadir = root.join("data");
        // A private tmpdir: servers started at the same time otherwise share /tmp and
        // collide on their temporary table files while installing the system tables.
        let tmpdir = root.join("tmp");
        fs::create_dir_all(&tmpdir).map_err(|source| LocalDbError::DataDir { path: tmpdir.clone(), source })?;
        let initialised = datadir.join("mysql").is_dir();
        if !initialised {
            fs::create_dir_all(&datadir)
                .map_err(|source| LocalDbError::DataDir { path: datadir.clone(), source })?;
            run(Command::new(&install_db)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", datadir.display()))
                .arg(format!("--tmpdir={}", tmpdir.display()))
                .arg("--user=root")
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db"))?;
        }

        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let log = root.join("mariadbd.log");
        let log_file = fs::File::create(&log).map_err(|source| LocalDbError::DataDir { path: log.clone(), source })?;
        let log_err = log_file
            .try_clone()
            .map_err(|source| LocalDbError::DataDir { path: log.clone(), source })?;
        let socket = root.join("mariadbd.sock");
        let mut command = Command::new(&server);
        command
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("mariadbd.pid").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-bin={}", datadir.join("binlog").display()))
            .arg(format!("--server-id={}", options.server_id))
            .arg("--binlog-format=ROW")
            .arg("--binlog-row-image=FULL")
            .arg("--binlog-row-metadata=FULL")
            // Small buffers: many of these servers may run at once on a small machine.
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-log-file-size=48M")
            .arg("--max-connections=200")
            .arg("--skip-name-resolve")
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        let child = command.spawn().map_err(|source| LocalDbError::Spawn {
            command: server.display().to_string(),
            source,
        })?;

        let mut db = Self {
            child: Some(child),
            root,
            _temp: temp,
            port,
            user: options.user.clone(),
            password: options.password.clone(),
            client,
        };
        db.wait_ready(&socket, &log)?;
        db.create_client_account(&options)?;
        Ok(db)
    }

    fn wait_ready(&mut self, socket: &Path, log: &Path) -> Result<(), LocalDbError> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(LocalDbError::ExitedEarly {
                        status: status.to_string(),
                        log: log.to_path_buf(),
                        tail: tail(log),
                    });
                }
            }
            if socket.exists() && self.root_sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalDbError::StartTimeout {
                    seconds: STARTUP_DEADLINE.as_secs(),
                    log: log.to_path_buf(),
                    tail: tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_client_account(&self, options: &LocalMariaDbOptions) -> Result<(), LocalDbError> {
        let user = sql_string(&options.user);
        let password = sql_string(&options.password);
        // The anonymous ''@'localhost' account would match TCP logins from 127.0.0.1 before
        // ours does and refuse them.
        self.root_sql(&format!(
            "DELETE FROM mysql.global_priv WHERE User='';
             FLUSH PRIVILEGES;
             CREATE USER IF NOT EXISTS {user}@'%' IDENTIFIED BY {password};
             GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user}@'%';
             FLUSH PRIVILEGES;"
        ))
        .map(|_| ())
    }

    /// Runs SQL as the server's root account (over the Unix socket) and returns the output
    /// of the `mariadb` client in batch mode (tab-separated, no headers).
    pub fn execute(&self, sql: &str) -> Result<String, LocalDbError> {
        self.root_sql(sql)
    }

    fn root_sql(&self, sql: &str) -> Result<String, LocalDbError> {
        let socket = self.root.join("mariadbd.sock");
        let rendered = format!("{} --socket={} --user=root <{} bytes of SQL>", self.client.display(), socket.display(), sql.len());
        // SQL goes in on stdin: an argument is limited to 128 KiB, a workload script is not.
        let mut child = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .arg("--user=root")
            .arg("--default-character-set=utf8mb4")
            .arg("--batch")
            .arg("--skip-column-names")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LocalDbError::Spawn { command: rendered.clone(), source })?;
        let mut stdin = child.stdin.take().ok_or_else(|| LocalDbError::Spawn {
            command: rendered.clone(),
            source: io::Error::other("no stdin pipe"),
        })?;
        // Written from a thread so a client that fills its stdout pipe cannot deadlock us.
        let input = sql.as_bytes().to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&input)
        });
        let output = child.wait_with_output().map_err(|source| LocalDbError::Spawn { command: rendered.clone(), source })?;
        let written = writer.join().unwrap_or_else(|_| Err(io::Error::other("stdin writer panicked")));
        if output.status.success() {
            written.map_err(|source| LocalDbError::Spawn { command: rendered.clone(), source })?;
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(LocalDbError::CommandFailed {
                command: rendered,
                status: output.status.to_string(),
                output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
            })
        }
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn user(&self) -> &str {
        &self.user
    }
    pub fn password(&self) -> &str {
        &self.password
    }
    /// The server's own directory (data, log, socket).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Environment variables, named as in the deployment guide, that point a capture at
    /// this server.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_HOST".into(), self.host().into()),
            ("DATABASE_PORT".into(), self.port.to_string()),
            ("DATABASE_USERNAME".into(), self.user.clone()),
            ("DATABASE_PASSWORD".into(), self.password.clone()),
        ]
    }

    /// Shuts the server down cleanly (flushing the binlog) and waits for it to exit.
    pub fn stop(mut self) -> Result<(), LocalDbError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LocalDbError> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        // SIGTERM is MariaDB's orderly shutdown.
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }
}

impl Drop for LocalMariaDb {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Quotes a value as an SQL string literal.
fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn find_binary(names: &[&str], wanted: &'static str) -> Result<PathBuf, LocalDbError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let dirs = path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(LocalDbError::BinaryNotFound { name: wanted })
}

fn free_port() -> Result<u16, LocalDbError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(LocalDbError::NoFreePort)?;
    let port = listener.local_addr().map_err(LocalDbError::NoFreePort)?.port();
    Ok(port)
}

/// Runs a command to completion, naming it in errors.
fn run(command: &mut Command) -> Result<String, LocalDbError> {
    let rendered = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LocalDbError::Spawn { command: rendered.clone(), source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LocalDbError::CommandFailed {
            command: rendered,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
