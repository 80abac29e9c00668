//! Test harness: runs the real `sluice` binary on a free port with its own
//! data directory, waits until it serves, and can kill it with SIGKILL and
//! start it again on the same data.

#![allow(dead_code)]

pub mod raw;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// Holds the config file of `start_with_config`.
    _config: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    log_path: PathBuf,
}

const READY_LINE: &str = "Kafka listener ready";

/// The port in the `n`th (0-based) "listener ready" log line, once present.
fn ready_port(log: &str, n: usize) -> Option<u16> {
    let line = log.lines().filter(|l| l.contains(READY_LINE)).nth(n)?;
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))?;
    listen.rsplit_once(':')?.1.parse().ok()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Broker {
    /// Starts a broker on a fresh data directory.
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    /// Starts a broker with extra `serve` flags.
    pub fn start_with(extra_args: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("broker.log");
        let mut broker = Broker {
            child: None,
            port: 0,
            data_dir,
            _tmp: Some(tmp),
            _config: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_path,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker with a TOML config file holding `toml`.
    pub fn start_with_config(toml: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("sluice.toml");
        std::fs::write(&config, toml).expect("config");
        let mut broker = Self::start_with(&["--config", config.to_str().expect("path")]);
        broker._config = Some(dir);
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the binary. The first start listens on port 0 and learns the
    /// port the broker got from its log; restarts reuse that port, so that
    /// clients reconnect to the same address.
    fn spawn(&mut self) {
        let ready_before = self.log().matches(READY_LINE).count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("broker log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.bootstrap())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice");
        self.child = Some(child);
        let mut port = None;
        wait_until("the broker to listen", Duration::from_secs(30), || {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("broker exited with {status}; log:\n{}", self.log());
                }
            }
            port = ready_port(&self.log(), ready_before);
            port.is_some()
        });
        self.port = port.expect("a port");
    }

    /// SIGKILL: no shutdown, no fsync, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the `sluice` binary with `args` (a tool command) and returns its
/// stdout, asserting success.
pub fn sluice(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let output = child.wait_with_output().expect("sluice output");
    assert!(
        output.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Builds the Java client tests (`clients/java`) with Maven once per test
/// binary and returns the jar with its dependencies.
pub fn java_client_jar() -> PathBuf {
    static JAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    JAR.get_or_init(|| {
        let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/java");
        let output = Command::new("mvn")
            .args(["-B", "-q", "package", "-DskipTests"])
            .current_dir(&project)
            .output()
            .unwrap_or_else(|e| panic!("cannot run Maven (needed for the Java client tests): {e}"));
        assert!(
            output.status.success(),
            "building the Java client tests with Maven failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let jar = project.join("target/sluice-java-client-tests.jar");
        assert!(jar.exists(), "Maven did not produce {}", jar.display());
        jar
    })
    .clone()
}

/// Creates `topic` with `partitions` partitions through `sluice topic
/// create`.
pub fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    sluice(
        &[
            "topic",
            "create",
            topic,
            "-p",
            &partitions.to_string(),
            "-b",
            &broker.bootstrap(),
        ],
        None,
    );
}

/// The end offset of `partition` in `sluice topic describe` output.
pub fn end_offset(described: &str, partition: i32) -> i64 {
    described
        .lines()
        .find(|l| l.split('\t').next() == Some(&partition.to_string()))
        .and_then(|l| l.rsplit('\t').next())
        .and_then(|end| end.parse().ok())
        .unwrap_or_else(|| panic!("no end offset for partition {partition} in:\n{described}"))
}
