//! Apache Kafka's own command-line tools, from the Maven jars that
//! `scripts/kafka-reference.sh install` fetches, against the real binary:
//! the console consumer with `--group`, `kafka-consumer-groups` listing,
//! describing (lag), resetting and deleting a group, and the console
//! producer and `kafka-producer-perf-test` with their defaults (an
//! idempotent producer, acks=all) and in transactions, and
//! `kafka-transactions` listing and describing them.

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
    tool_with_input(libs, class, args, "")
}

/// Runs a Kafka tool's main class with `input` on its standard input.
fn tool_with_input(libs: &std::path::Path, class: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg(class)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run java {class}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot run java {class}: {e}"));
    let _ = writer.join();
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
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const PRODUCER_PERF_TEST: &str = "org.apache.kafka.tools.ProducerPerformance";
const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";

/// Kafka's console producer and perf tool with their defaults, which since
/// Kafka 3.0 mean an idempotent producer: every record arrives once.
#[test]
fn kafka_console_producer_and_producer_perf_test_with_their_defaults() {
    let libs = kafka_libs();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let lines: String = (0..500).map(|i| format!("line-{i}\n")).collect();
    tool_with_input(
        &libs,
        CONSOLE_PRODUCER,
        &["--bootstrap-server", &bootstrap, "--topic", "typed"],
        &lines,
    );
    let consumed = tool(
        &libs,
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "typed",
            "--from-beginning",
            "--max-messages",
            "500",
        ],
    );
    let read: Vec<&str> = consumed
        .lines()
        .filter(|l| l.starts_with("line-"))
        .collect();
    let expected: Vec<String> = (0..500).map(|i| format!("line-{i}")).collect();
    assert_eq!(read, expected, "every line once, in order");

    let report = tool(
        &libs,
        PRODUCER_PERF_TEST,
        &[
            "--topic",
            "perf",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
        ],
    );
    assert!(report.contains("20000 records sent"), "{report}");
    let described = common::sluice(&["topic", "describe", "perf", "-b", &bootstrap], None);
    // Auto-created with one partition (default_partitions).
    assert_eq!(common::end_offset(&described, 0), 20000, "{described}");

    // kafka-transactions lists the perf tool's idempotent producer.
    let producers = tool(
        &libs,
        TRANSACTIONS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "describe-producers",
            "--topic",
            "perf",
            "--partition",
            "0",
        ],
    );
    let rows: Vec<&str> = producers
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 1, "{producers}");

    // The perf tool in transactions, then kafka-transactions lists and
    // describes its transactional id, and a read_committed console
    // consumer reads every record.
    let report = tool(
        &libs,
        PRODUCER_PERF_TEST,
        &[
            "--topic",
            "perf-txn",
            "--num-records",
            "5000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--transactional-id",
            "perf-txn-id",
            "--transaction-duration-ms",
            "100",
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
        ],
    );
    assert!(report.contains("5000 records sent"), "{report}");
    let listed = tool(
        &libs,
        TRANSACTIONS,
        &["--bootstrap-server", &bootstrap, "list"],
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("perf-txn-id") && l.contains("CompleteCommit")),
        "{listed}"
    );
    let described = tool(
        &libs,
        TRANSACTIONS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "describe",
            "--transactional-id",
            "perf-txn-id",
        ],
    );
    assert!(described.contains("CompleteCommit"), "{described}");
    let consumed = tool(
        &libs,
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "perf-txn",
            "--from-beginning",
            "--max-messages",
            "5000",
            "--consumer-property",
            "isolation.level=read_committed",
        ],
    );
    // The perf tool's records are 100 random letters each.
    assert_eq!(consumed.lines().filter(|l| l.len() == 100).count(), 5000);
}

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
