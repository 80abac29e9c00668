//! Apache Kafka's own command-line tools, from the Maven jars that
//! `scripts/kafka-reference.sh install` fetches, against the real binary:
//! the console consumer with `--group`, and `kafka-consumer-groups`
//! listing, describing (lag), resetting and deleting a group.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Broker;

/// The folder of Kafka's jars, installed once (Maven, on first use; the
/// tests of this file share one install).
fn kafka_libs() -> PathBuf {
    static LIBS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBS.get_or_init(install_kafka).clone()
}

fn install_kafka() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(repo.join("scripts/kafka-reference.sh"))
        .arg("install")
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/kafka-reference.sh: {e}"));
    assert!(
        output.status.success(),
        "installing Kafka's jars failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let libs = std::env::var_os("SLUICE_PEERS_DIR")
        .map_or_else(|| repo.join(".peers"), PathBuf::from)
        .join("kafka/libs");
    assert!(libs.is_dir(), "no {}", libs.display());
    libs
}

/// Runs a Kafka tool's main class; its standard output.
fn tool(libs: &std::path::Path, class: &str, args: &[&str]) -> String {
    let output = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg(class)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run java {class}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{class} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const CONSUMER_GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

#[test]
fn kafka_console_consumer_and_consumer_groups_tool() {
    console_consumer_and_groups_tool(&[]);
}

/// The same with the console consumer on the KIP-848 protocol; the tool
/// then describes the group through ConsumerGroupDescribe.
#[test]
fn kafka_console_consumer_and_consumer_groups_tool_kip_848() {
    console_consumer_and_groups_tool(&["--consumer-property", "group.protocol=consumer"]);
}

fn console_consumer_and_groups_tool(consumer_args: &[&str]) {
    let libs = kafka_libs();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    common::sluice(
        &[
            "topic",
            "create",
            "tools",
            "--partitions",
            "3",
            "-b",
            &bootstrap,
        ],
        None,
    );
    let lines: String = (0..300).map(|i| format!("key-{i}\tvalue-{i}\n")).collect();
    common::sluice(&["produce", "tools", "-b", &bootstrap], Some(&lines));

    let mut args = vec![
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "tools",
        "--group",
        "console",
        "--from-beginning",
        "--max-messages",
        "300",
    ];
    args.extend_from_slice(consumer_args);
    let consumed = tool(&libs, CONSOLE_CONSUMER, &args);
    assert_eq!(
        consumed.lines().filter(|l| l.starts_with("value-")).count(),
        300
    );

    let groups = |args: &[&str]| {
        let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        tool(&libs, CONSUMER_GROUPS, &all)
    };
    assert!(groups(&["--list"]).lines().any(|l| l.trim() == "console"));
    // LAG column: every partition fully consumed.
    let lag = |described: &str| -> Vec<i64> {
        described
            .lines()
            .filter(|l| l.starts_with("console "))
            .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
            .collect()
    };
    let described = groups(&["--describe", "--group", "console"]);
    assert_eq!(lag(&described), vec![0, 0, 0], "{described}");
    groups(&[
        "--reset-offsets",
        "--group",
        "console",
        "--topic",
        "tools",
        "--to-earliest",
        "--execute",
    ]);
    let described = groups(&["--describe", "--group", "console"]);
    assert_eq!(lag(&described).iter().sum::<i64>(), 300, "{described}");
    let deleted = groups(&["--delete", "--group", "console"]);
    assert!(deleted.contains("successful"), "{deleted}");
    assert!(!groups(&["--list"]).lines().any(|l| l.trim() == "console"));
}
