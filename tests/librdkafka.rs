//! librdkafka (through the `rdkafka` crate) against the real broker binary:
//! topic admin, produce and consume with every codec, keyed partitioning,
//! and offsets.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_client::partition_for_key;

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client")
}

pub fn producer(broker: &Broker, compression: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("compression.type", compression)
        // Kafka's Java partitioner, so keys land where Java clients put them.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// A consumer with no group: partitions are assigned explicitly. `extra`
/// adds or overrides librdkafka settings.
pub fn consumer(broker: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        // librdkafka needs a group id even for assign(); no group API is
        // used since nothing is committed and start offsets are explicit.
        .set("group.id", "sluice-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("consumer")
}

async fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let results = admin(broker)
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.expect("topic created");
    }
}

/// Reads every record of `topic` from the beginning until `expected` have
/// arrived: (partition, offset, key, value).
pub fn consume_all(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, String, String)> {
    consume_all_with(broker, topic, partitions, expected, &[])
}

/// [`consume_all`] with extra consumer settings.
pub fn consume_all_with(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    expected: usize,
    extra: &[(&str, &str)],
) -> Vec<(i32, i64, String, String)> {
    let consumer = consumer(broker, extra);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while out.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {} of {expected}",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            out.push((
                message.partition(),
                message.offset(),
                String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_with_keys_on_kafkas_partitions() {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 3).await;
        let producer = producer(&broker, codec);
        let count = 300;
        let mut acked = HashMap::new();
        for i in 0..count {
            let key = format!("key-{}", i % 17);
            let value = format!("{codec}-value-{i}-{}", "x".repeat(i % 50));
            let delivery = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
            let (partition, offset) = (delivery.partition, delivery.offset);
            assert_eq!(
                partition,
                partition_for_key(key.as_bytes(), 3),
                "key {key} went to the partition Kafka's partitioner picks"
            );
            acked.insert(value, (partition, offset));
        }
        let records = consume_all(&broker, &topic, 3, count);
        assert_eq!(records.len(), count);
        for (partition, offset, _key, value) in &records {
            assert_eq!(acked.get(value), Some(&(*partition, *offset)), "{value}");
        }
        // Per-partition order is the order of sending.
        let mut last: HashMap<i32, i64> = HashMap::new();
        for (partition, offset, _, _) in &records {
            let previous = last.insert(*partition, *offset);
            assert!(previous.is_none_or(|p| p < *offset));
        }
    }
}

/// Fetches are answered from segment files with sendfile: small fetch
/// limits over small segments make many responses, each starting mid-way
/// into a segment and some ending at a segment's end; every record must
/// come back exactly as sent, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fetches_across_many_segments_return_every_record_in_order() {
    let broker = Broker::start();
    let topic = "rolled";
    let results = admin(&broker)
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("segment.bytes", "8192")],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("partitioner", "murmur2_random")
        .set("batch.size", "3000")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let count = 900;
    let mut sent: HashMap<i32, Vec<String>> = HashMap::new();
    for i in 0..count {
        let key = format!("k{}", i % 7);
        let value = format!("{i:05}-{}", "v".repeat(300 + i % 400));
        let delivery = producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        sent.entry(delivery.partition).or_default().push(value);
    }
    let segments = std::fs::read_dir(broker.data_dir().join("rolled-0"))
        .expect("partition dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert!(segments > 5, "expected many segments, found {segments}");

    let records = consume_all_with(
        &broker,
        topic,
        3,
        count,
        &[
            ("message.max.bytes", "6000"),
            ("fetch.max.bytes", "6000"),
            ("max.partition.fetch.bytes", "2500"),
        ],
    );
    let mut received: HashMap<i32, Vec<String>> = HashMap::new();
    for (partition, _offset, _key, value) in records {
        received.entry(partition).or_default().push(value);
    }
    assert_eq!(received, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_and_watermarks() {
    let broker = Broker::start();
    create_topic(&broker, "admin-topic", 2).await;

    // Creating it again is TOPIC_ALREADY_EXISTS.
    let again = admin(&broker)
        .create_topics(
            &[NewTopic::new("admin-topic", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert!(matches!(
        again[0],
        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
    ));

    // Replication factor 3 on a one-broker cluster is refused.
    let replicated = admin(&broker)
        .create_topics(
            &[NewTopic::new("replicated", 1, TopicReplication::Fixed(3))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert!(matches!(
        replicated[0],
        Err((
            _,
            rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
        ))
    ));

    // Grow to 4 partitions, then produce to the new one.
    let grown = admin(&broker)
        .create_partitions(
            &[NewPartitions::new("admin-topic", 4)],
            &AdminOptions::new(),
        )
        .await
        .expect("create_partitions");
    grown[0].as_ref().expect("grown");
    let producer = producer(&broker, "none");
    for _ in 0..5 {
        producer
            .send(
                FutureRecord::<(), _>::to("admin-topic")
                    .partition(3)
                    .payload("p3"),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let consumer = consumer(&broker, &[]);
    let (low, high) = consumer
        .fetch_watermarks("admin-topic", 3, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 5));

    // Offsets by timestamp: everything was produced after t0.
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("admin-topic", 3, Offset::Offset(0))
        .expect("tpl");
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .expect("offsets_for_times");
    let element = found.elements_for_topic("admin-topic");
    assert_eq!(element[0].offset(), Offset::Offset(0));

    // Delete it: metadata no longer lists it.
    let deleted = admin(&broker)
        .delete_topics(&["admin-topic"], &AdminOptions::new())
        .await
        .expect("delete_topics");
    deleted[0].as_ref().expect("deleted");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    assert!(metadata.topics().iter().all(|t| t.name() != "admin-topic"));
}

/// Creates `topic` through librdkafka's admin client, and checks it was.
async fn create_with_admin(broker: &Broker, topic: NewTopic<'_>) {
    admin(broker)
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create")[0]
        .as_ref()
        .expect("created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_describe_and_alter() {
    use rdkafka::admin::ResourceSpecifier;
    let broker = Broker::start();
    let topic =
        NewTopic::new("configured", 1, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    create_with_admin(&broker, topic).await;
    let describe = |admin: AdminClient<DefaultClientContext>| async move {
        let result = admin
            .describe_configs(
                &[ResourceSpecifier::Topic("configured")],
                &AdminOptions::new(),
            )
            .await
            .expect("describe_configs");
        let resource = result.into_iter().next().expect("one").expect("described");
        resource
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect::<HashMap<_, _>>()
    };
    let configs = describe(admin(&broker)).await;
    assert_eq!(configs["retention.ms"], "3600000");
    assert_eq!(configs["cleanup.policy"], "delete");
}

/// A topic with `message.timestamp.type=LogAppendTime`: the broker stamps
/// its own time into each batch's header, which the CRC covers, while the
/// producer's (compressed) records are stored as sent. A consumer that
/// checks CRCs reads every record back with the broker's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_is_stamped_under_a_valid_crc() {
    use rdkafka::message::Timestamp;
    let broker = Broker::start();
    let topic = NewTopic::new("append-time", 2, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    create_with_admin(&broker, topic).await;
    let before = now_ms();
    // The client's defaults otherwise: an idempotent producer.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let count = 200;
    let values: Vec<String> = (0..count).map(|i| format!("value-{i}")).collect();
    // Queued together, so that batches hold many records, then awaited.
    let deliveries: Vec<_> = values
        .iter()
        .map(|value| {
            producer
                .send_result(
                    FutureRecord::to("append-time")
                        .key("k")
                        .payload(value)
                        // A producer time far in the past, which the
                        // broker's time must replace.
                        .timestamp(1_000),
                )
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    for delivery in deliveries {
        delivery.await.expect("not cancelled").expect("delivered");
    }
    let after = now_ms();
    let consumer = consumer(&broker, &[("check.crcs", "true")]);
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset("append-time", p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen < count {
        assert!(std::time::Instant::now() < deadline, "consumed only {seen}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a record whose CRC checks");
        match message.timestamp() {
            Timestamp::LogAppendTime(ms) => {
                assert!(
                    (before..=after).contains(&ms),
                    "{ms} not in {before}..={after}"
                )
            }
            other => panic!("expected the broker's append time, got {other:?}"),
        }
        seen += 1;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
