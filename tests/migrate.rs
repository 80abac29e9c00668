//! `sluice topic migrate`: a group's backlog on a narrow topic moves into a
//! wider one while producers keep writing, across a broker kill -9, with
//! no record lost or duplicated, each key's order kept, and the group's
//! offsets on the source advanced.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::TopicPartitionList;

const KEYS: usize = 300;

/// Produces records `i` in `range`: key `key-(i % KEYS)`, value
/// `key-(i % KEYS)/i`, so that each key's values increase.
fn produce(broker: &Broker, range: std::ops::Range<usize>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for i in range {
        let key = format!("key-{}", i % KEYS);
        let value = format!("{key}/{i}");
        while let Err((e, _)) = producer.send(BaseRecord::to("orders").key(&key).payload(&value)) {
            assert!(
                matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ),
                "{e}"
            );
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

fn sluice(broker: &Broker, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-b", bootstrap.as_str()]);
    common::sluice(&all, None)
}

/// The lag the migration's status reports.
fn migration_lag(broker: &Broker) -> Option<i64> {
    let status = sluice(
        broker,
        &["topic", "migrate", "--from", "orders", "--status"],
    );
    status
        .lines()
        .find_map(|l| l.strip_prefix("lag "))
        .and_then(|l| l.trim().parse().ok())
}

/// One forwarded record: where it landed, its key and value, its origin.
struct Forwarded {
    partition: i32,
    key: String,
    value: String,
    origin: (i32, i64),
}

/// Reads every record of `orders-wide` from the start.
fn read_wide(broker: &Broker) -> Vec<Forwarded> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "migration-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0i64;
    for q in 0..6 {
        assignment
            .add_partition_offset("orders-wide", q, rdkafka::Offset::Beginning)
            .expect("partition");
        let (_, high) = consumer
            .fetch_watermarks("orders-wide", q, Duration::from_secs(10))
            .expect("watermarks");
        expected += high;
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    common::wait_until(
        "every forwarded record read",
        Duration::from_secs(60),
        || {
            while let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let m = m.expect("consume");
                let header = |name: &str| {
                    m.headers()
                        .and_then(|h| h.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .expect("origin header")
                };
                out.push(Forwarded {
                    partition: m.partition(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
                    origin: (
                        header("sluice.source.partition")
                            .parse()
                            .expect("partition"),
                        header("sluice.source.offset").parse().expect("offset"),
                    ),
                });
                assert_eq!(header("sluice.source.topic"), "orders");
            }
            out.len() as i64 >= expected
        },
    );
    out
}

#[test]
fn migrate_moves_a_backlog_across_a_kill_9_without_loss_or_duplicates() {
    let mut broker = Broker::start();
    sluice(&broker, &["topic", "create", "orders", "-p", "2"]);
    produce(&broker, 0..60_000);

    // The group read some of it before the backlog grew.
    let start: BTreeMap<i32, i64> = BTreeMap::from([(0, 1000), (1, 2500)]);
    {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", "billing")
            .create()
            .expect("consumer");
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &start {
            offsets
                .add_partition_offset("orders", *p, rdkafka::Offset::Offset(*o))
                .expect("offset");
        }
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    }

    let started = sluice(
        &broker,
        &[
            "topic",
            "migrate",
            "--group",
            "billing",
            "--from",
            "orders",
            "--to",
            "orders-wide",
            "--partitions",
            "6",
        ],
    );
    assert!(started.contains("migrating group billing"), "{started}");
    // Kill the broker while the backlog is still moving.
    common::wait_until("forwarding under way", Duration::from_secs(60), || {
        let wide = sluice(&broker, &["topic", "describe", "orders-wide"]);
        (0..6).map(|q| common::end_offset(&wide, q)).sum::<i64>() > 0
    });
    broker.kill9();
    broker.restart();

    // Producers go on writing to the old topic; the forwarder follows.
    produce(&broker, 60_000..63_000);
    common::wait_until("the migration caught up", Duration::from_secs(120), || {
        migration_lag(&broker) == Some(0)
    });

    assert_eq!(
        broker.log().matches("migration resumed").count(),
        2,
        "the forwarder resumed after the restart"
    );
    let forwarded = read_wide(&broker);
    // Exactly the records from the group's offsets on, each once.
    let mut origins = BTreeSet::new();
    for f in &forwarded {
        assert!(origins.insert(f.origin), "{:?} forwarded twice", f.origin);
    }
    let ends = sluice(&broker, &["topic", "describe", "orders"]);
    let mut expected = BTreeSet::new();
    for (p, from) in &start {
        let end = common::end_offset(&ends, *p);
        expected.extend((*from..end).map(|o| (*p, o)));
    }
    assert_eq!(origins.len(), expected.len(), "records lost or extra");
    assert_eq!(origins, expected);
    assert_eq!(forwarded.len() as i64, 63_000 - 3500);

    // Each key lives on one partition of the new topic, in its old order.
    let mut by_key: BTreeMap<&str, (i32, i64)> = BTreeMap::new();
    for f in &forwarded {
        let seq: i64 = f
            .value
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("seq");
        assert!(f.value.starts_with(&f.key));
        let entry = by_key.entry(&f.key).or_insert((f.partition, -1));
        assert_eq!(entry.0, f.partition, "key {} on two partitions", f.key);
        assert!(seq > entry.1, "key {} out of order", f.key);
        entry.1 = seq;
    }
    assert_eq!(by_key.len(), KEYS);
    assert!(
        by_key
            .values()
            .map(|(q, _)| q)
            .collect::<BTreeSet<_>>()
            .len()
            > 1
    );

    // The group's offsets on the old topic moved to its end.
    let described = sluice(&broker, &["group", "describe", "billing"]);
    for p in 0..2 {
        let end = common::end_offset(&ends, p);
        assert!(
            described.contains(&format!("orders\t{p}\t{end}\t{end}\t0")),
            "{described}"
        );
    }
    let stopped = sluice(&broker, &["topic", "migrate", "--from", "orders", "--stop"]);
    assert!(stopped.contains("stopped"), "{stopped}");
}
