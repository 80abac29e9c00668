//! kill -9 during production: a librdkafka producer (acks=all, idempotence
//! off, one request in flight) sends keyed messages to a 6-partition topic
//! while the broker is killed twice and restarted. Afterwards every
//! acknowledged message must be readable, at the offset its acknowledgement
//! gave, in per-key order. A retry may repeat a message; none may be missing.
//! With an idempotent producer (librdkafka's `enable.idempotence`, five
//! requests in flight) not even a retry that crosses the kill may repeat
//! one: the broker rebuilds each producer's recent sequences on restart.
//!
//! `SLUICE_CRASH_TEST_MESSAGES` sets the message count (default 100,000).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, Broker};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const KEYS: usize = 60;

#[derive(Default)]
struct Deliveries {
    /// message number → (partition, offset) for each acknowledged message.
    acked: Mutex<HashMap<usize, (i32, i64)>>,
    failed: Mutex<Vec<(usize, String)>>,
}

#[derive(Clone)]
struct Recorder(Arc<Deliveries>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, number: Self::DeliveryOpaque) {
        match result {
            Ok(message) => {
                self.0
                    .acked
                    .lock()
                    .expect("lock")
                    .insert(*number, (message.partition(), message.offset()));
            }
            Err((error, _)) => self
                .0
                .failed
                .lock()
                .expect("lock")
                .push((*number, error.to_string())),
        }
    }
}

fn message_count() -> usize {
    std::env::var("SLUICE_CRASH_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn run_crash_test(extra_args: &[&str], idempotent: bool) {
    let total = message_count();
    let started = std::time::Instant::now();
    let mut broker = Broker::start_with(extra_args);
    let topic = "crash";
    common::sluice(
        &[
            "topic",
            "create",
            topic,
            "-p",
            "6",
            "-b",
            &broker.bootstrap(),
        ],
        None,
    );

    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", idempotent.to_string())
        .set(
            "max.in.flight.requests.per.connection",
            if idempotent { "5" } else { "1" },
        )
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "2")
        // Small batches: many requests, so the kills land between and during
        // them rather than after the last one.
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Recorder(Arc::clone(&deliveries)))
        .expect("producer");

    let sender = {
        std::thread::spawn(move || {
            for number in 0..total {
                let key = format!("key-{}", number % KEYS);
                let value = format!("{number}");
                let mut record = BaseRecord::with_opaque_to(topic, Box::new(number))
                    .key(&key)
                    .payload(&value);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, returned)) => {
                            record = returned;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            }
            producer.flush(Duration::from_secs(180)).expect("flush");
            producer
        })
    };

    // Kill the broker twice while messages are being acknowledged.
    for fraction in [4, 2] {
        let target = total / fraction;
        wait_until("acknowledgements", Duration::from_secs(180), || {
            deliveries.acked.lock().expect("lock").len() >= target
        });
        broker.kill9();
        let acked_at_kill = deliveries.acked.lock().expect("lock").len();
        eprintln!(
            "crash test: killed with {acked_at_kill} of {total} acknowledged after {:?}",
            started.elapsed()
        );
        assert!(
            acked_at_kill < total,
            "the kill came after production ended; it tests nothing"
        );
        broker.restart();
    }
    let producer = sender.join().expect("sender thread");
    drop(producer);

    eprintln!("crash test: producer done after {:?}", started.elapsed());
    let acked = deliveries.acked.lock().expect("lock").clone();
    let failed = deliveries.failed.lock().expect("lock").clone();
    eprintln!(
        "crash test: {} sent, {} acknowledged, {} failed",
        total,
        acked.len(),
        failed.len()
    );
    assert!(
        acked.len() >= total * 9 / 10,
        "too few acknowledgements: {} of {total}; failures: {:?}",
        acked.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );

    // Read everything back.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        // librdkafka needs a group id even for assign(); no group API is
        // used since nothing is committed and start offsets are explicit.
        .set("group.id", "sluice-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, high);
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let expected: i64 = ends.values().sum();
    let mut log: BTreeMap<(i32, i64), (String, usize)> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while (log.len() as i64) < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {expected} records; ends {ends:?}",
            log.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consume");
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let number: usize = std::str::from_utf8(message.payload().unwrap_or_default())
            .expect("utf-8")
            .parse()
            .expect("number");
        log.insert((message.partition(), message.offset()), (key, number));
    }

    // Every acknowledged message is where its acknowledgement said.
    for (number, position) in &acked {
        let stored = log.get(position).map(|(_, n)| *n);
        assert_eq!(
            stored,
            Some(*number),
            "acknowledged message {number} is not at {position:?}"
        );
    }
    // Per key, first appearances come in sending order, with no gaps among
    // acknowledged messages.
    let mut seen_per_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (key, number) in log.values() {
        let seen = seen_per_key.entry(key.clone()).or_default();
        if !seen.contains(number) {
            seen.push(*number);
        }
    }
    for (key, numbers) in &seen_per_key {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {:?}",
            numbers.windows(2).find(|w| w[0] >= w[1])
        );
    }
    let duplicates = log.len()
        - log
            .values()
            .map(|(_, n)| n)
            .collect::<std::collections::HashSet<_>>()
            .len();
    eprintln!(
        "crash test: {} records in the log, {duplicates} duplicates from retries",
        log.len()
    );
    if idempotent {
        assert_eq!(
            duplicates, 0,
            "an idempotent producer's retry was stored twice"
        );
        let recognised = broker
            .log()
            .matches("a producer's retry of a stored batch")
            .count();
        eprintln!("crash test: {recognised} retries recognised (broker log)");
    }
}

#[test]
fn acknowledged_messages_survive_kill9_with_fsync_always() {
    run_crash_test(&[], false);
}

#[test]
fn an_idempotent_producer_s_retries_across_kill9_are_stored_once() {
    run_crash_test(&[], true);
}

#[test]
fn acknowledged_messages_survive_kill9_with_fsync_never() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "fsync = \"never\"\n").expect("config");
    run_crash_test(&["--config", config.to_str().expect("utf-8 path")], false);
}
