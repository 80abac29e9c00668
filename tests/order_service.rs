//! The README's order-service example (`examples/order_service`), run as a
//! user would: the service writes an order row to SQLite and sends "order
//! created" in a transaction; killed between its database commit and its
//! commit to Sluice, it leaves a half message that Sluice's check-back
//! resolves by asking the service's checker, which finds the row and
//! answers commit. An order whose row was rolled back is rolled back too.
//! The consumer sees each created order exactly once.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use common::Broker;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/order_service/run.sh")
}

fn place(broker: &Broker, db: &std::path::Path, order: &str, extra: &[&str]) -> bool {
    Command::new("bash")
        .arg(example())
        .args([
            "place",
            &broker.bootstrap(),
            db.to_str().expect("path"),
            order,
        ])
        .args(extra)
        .status()
        .expect("run the order service")
        .success()
}

#[test]
fn a_half_message_left_by_a_dead_order_service_is_decided_by_its_checker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("orders.db");
    let port = common::free_port();
    let mut checker = Command::new("bash")
        .arg(example())
        .args(["checker", &port.to_string(), db.to_str().expect("path")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the checker");
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = checker.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(120))
        .expect("the checker starts");
    assert!(first.starts_with("checker listening"), "{first}");

    let broker = Broker::start_with_config(&format!(
        "transaction_check_after_ms = 500\n\
         transaction_check_interval_ms = 200\n\
         [[transaction_checkers]]\n\
         transactional_id_prefix = \"order-service-\"\n\
         url = \"http://127.0.0.1:{port}/check\"\n"
    ));
    // One partition: every order in one order, so that reading the last
    // one means every earlier transaction was decided.
    common::create_topic(&broker, "orders", 1);

    assert!(place(&broker, &db, "1001", &[]));
    assert!(
        !place(&broker, &db, "1002", &["--die-before-commit"]),
        "the service was to die"
    );
    assert!(
        !place(&broker, &db, "1003", &["--die-before-commit", "--no-row"]),
        "the service was to die"
    );
    assert!(place(&broker, &db, "1004", &[]));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "shipping")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("orders", 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|v: &String| v.ends_with("1004")) {
        assert!(Instant::now() < deadline, "read only {seen:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.expect("consume");
            seen.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string());
        }
    }
    assert_eq!(
        seen,
        [
            "order created 1001",
            "order created 1002",
            "order created 1004"
        ],
        "each created order once; the rolled-back one never"
    );
    let checks: BTreeSet<String> = lines.try_iter().collect();
    assert!(
        checks.contains("check order-service-1002: commit"),
        "{checks:?}"
    );
    assert!(
        checks.contains("check order-service-1003: rollback"),
        "{checks:?}"
    );
    let _ = checker.kill();
    let _ = checker.wait();
}
