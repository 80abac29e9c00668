//! Consumer groups with librdkafka's subscribing consumer (the classic
//! protocol): members split partitions without overlap or gap, each group
//! reads every message (publish/subscribe), and committed offsets survive
//! a broker kill -9.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::TopicPartitionList;

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    common::sluice(
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

/// Produces `n` keyed records (`key-i` → `value-i`) and waits for all acks.
fn produce(broker: &Broker, topic: &str, range: std::ops::Range<usize>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&value)) {
                Ok(()) => break,
                Err((e, _)) => {
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
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn member(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// Polls every consumer in turn until `condition` holds on what they have
/// read, or the deadline passes. Returns (consumer index, partition,
/// offset, value) of every message read.
fn poll_until(
    consumers: &[BaseConsumer],
    timeout: Duration,
    mut condition: impl FnMut(&[(usize, i32, i64, String)]) -> bool,
) -> Vec<(usize, i32, i64, String)> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !condition(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out; read {} messages",
            seen.len()
        );
        for (i, consumer) in consumers.iter().enumerate() {
            if let Some(message) = consumer.poll(Duration::from_millis(20)) {
                let message = message.expect("consumer error");
                let value =
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
                seen.push((i, message.partition(), message.offset(), value));
            }
        }
    }
    seen
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[test]
fn three_members_split_six_partitions_and_a_second_group_reads_everything() {
    let broker = Broker::start();
    create_topic(&broker, "orders", 6);
    produce(&broker, "orders", 0..600);

    let members: Vec<BaseConsumer> = (0..3).map(|_| member(&broker, "billing", &[])).collect();
    for m in &members {
        m.subscribe(&["orders"]).expect("subscribe");
    }
    let seen = poll_until(&members, Duration::from_secs(60), |seen| {
        seen.iter().map(|s| &s.3).collect::<BTreeSet<_>>().len() == 600
    });
    // Every message, and each partition owned by exactly one member.
    let owners: Vec<BTreeSet<i32>> = members.iter().map(assigned).collect();
    let all: BTreeSet<i32> = owners.iter().flatten().copied().collect();
    assert_eq!(all, (0..6).collect(), "a gap in the assignment: {owners:?}");
    assert_eq!(
        owners.iter().map(BTreeSet::len).sum::<usize>(),
        6,
        "an overlap in the assignment: {owners:?}"
    );
    assert!(owners.iter().all(|o| o.len() == 2), "{owners:?}");
    // Each member read only from its own partitions once the group settled.
    let per_member: BTreeMap<usize, BTreeSet<i32>> =
        seen.iter().fold(BTreeMap::new(), |mut acc, (m, p, _, _)| {
            acc.entry(*m).or_default().insert(*p);
            acc
        });
    assert_eq!(per_member.len(), 3, "every member consumed: {per_member:?}");

    // Publish/subscribe: another group reads every message too.
    let other = member(&broker, "audit", &[]);
    other.subscribe(&["orders"]).expect("subscribe");
    let seen = poll_until(
        std::slice::from_ref(&other),
        Duration::from_secs(60),
        |seen| seen.len() >= 600,
    );
    let values: BTreeSet<&String> = seen.iter().map(|s| &s.3).collect();
    assert_eq!(values.len(), 600);
    assert_eq!(assigned(&other), (0..6).collect());
    drop(members);
}

#[test]
fn committed_offsets_survive_a_broker_kill_9() {
    let mut broker = Broker::start();
    create_topic(&broker, "ledger", 1);
    produce(&broker, "ledger", 0..200);
    {
        let consumer = member(&broker, "settle", &[("enable.auto.commit", "false")]);
        consumer.subscribe(&["ledger"]).expect("subscribe");
        let seen = poll_until(
            std::slice::from_ref(&consumer),
            Duration::from_secs(60),
            |s| s.len() >= 120,
        );
        // Commit the position after the 120th message.
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("ledger", 0, rdkafka::Offset::Offset(seen[119].2 + 1))
            .expect("offset");
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
        let committed = consumer
            .committed(Duration::from_secs(10))
            .expect("committed");
        assert_eq!(
            committed.find_partition("ledger", 0).map(|e| e.offset()),
            Some(rdkafka::Offset::Offset(120))
        );
    }
    broker.restart();
    let consumer = member(&broker, "settle", &[("enable.auto.commit", "false")]);
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let seen = poll_until(
        std::slice::from_ref(&consumer),
        Duration::from_secs(60),
        |s| s.len() >= 80,
    );
    assert_eq!(seen[0].2, 120, "resumed at the committed offset");
    assert_eq!(seen[0].3, "value-120");
}
