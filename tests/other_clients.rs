//! Clients that share no code with librdkafka, against the real binary: the
//! Java client (`kafka-clients`, the reference implementation, built by
//! Maven here) and kafka-python (installed from PyPI into a venv). Each runs
//! the round trip described in `clients/README.md`. If Maven, Java or Python
//! is missing, or a download fails, the test fails and says why.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Broker;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn java_client_round_trip() {
    let jar = common::java_client_jar();
    let broker = Broker::start();
    let out = run(
        "the Java client round trip",
        Command::new("java").arg("-jar").arg(&jar).args([
            broker.bootstrap().as_str(),
            "java-round-trip",
            "5000",
        ]),
    );
    assert!(out.contains("OK produced=5000 consumed=5000"), "{out}");
}

#[test]
fn kafka_python_round_trip() {
    let broker = Broker::start();
    let out = run(
        "the kafka-python round trip",
        Command::new("bash")
            .arg(repo().join("clients/python/run.sh"))
            .args([broker.bootstrap().as_str(), "python-round-trip", "2000"]),
    );
    assert!(out.contains("OK produced=2000 consumed=2000"), "{out}");
}
