//! An attacker's requests against the real binary while a librdkafka
//! producer runs the whole time: huge counts in every array, string and
//! bytes prefix of every request Sluice accepts, the 25-byte Metadata that
//! used to abort the broker, poisoned and compressed record batches, and
//! poisoned batches written straight into a segment by an older build.
//! Each gets a Kafka error code or a closed connection with a log line;
//! the producer never notices.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{batch, batch_at, connect, exchange, frame, is_closed, produce, record};
use common::{wait_until, Broker};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use sluice_broker::handlers::SUPPORTED_APIS;
use sluice_broker::wire::sample::{Rng, Sampler};
use sluice_broker::wire::schema_for;

const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

/// Counts librdkafka's delivery reports.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A producer that sends to `topic` until told to stop, then flushes.
/// Returns how many records it sent.
fn spawn_producer(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    deliveries: Arc<Deliveries>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let producer: BaseProducer<Counting> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "60000")
            .create_with_context(Counting(deliveries))
            .expect("producer");
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let value = format!("steady-{sent}");
            match producer.send(BaseRecord::<(), _>::to(topic).payload(&value)) {
                Ok(()) => sent += 1,
                Err((e, _)) => panic!("producer refused a record: {e}"),
            }
            producer.poll(Duration::from_millis(1));
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("producer flush");
        sent
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[test]
fn hostile_requests_close_one_connection_and_the_producer_never_notices() {
    let mut broker = Broker::start();
    let stop = Arc::new(AtomicBool::new(false));
    let deliveries = Arc::new(Deliveries::default());
    let producer = spawn_producer(
        broker.bootstrap(),
        "steady",
        Arc::clone(&stop),
        Arc::clone(&deliveries),
    );
    wait_until(
        "the producer's first deliveries",
        Duration::from_secs(30),
        || deliveries.ok.load(Ordering::Relaxed) > 100,
    );

    // The exact requests that used to abort the process: Metadata v12 whose
    // topics array claims 2^32-2 elements, and v4 claiming 2^31-1.
    let killers: [(i16, &[u8]); 2] = [
        (12, &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0]),
        (4, &[0x7f, 0xff, 0xff, 0xff, 1]),
    ];
    for (version, body) in killers {
        let mut stream = connect(&broker);
        stream
            .write_all(&frame(ApiKey::Metadata, version, body))
            .expect("send");
        assert!(
            is_closed(&mut stream),
            "Metadata v{version} killer answered"
        );
        assert!(broker.is_running(), "broker died:\n{}", broker.log());
    }

    // Every length or count prefix of every request Sluice accepts, made
    // huge: the connection is closed, nothing else happens.
    let mut sent = 0;
    for &(api_key, min, max) in SUPPORTED_APIS {
        let schema = schema_for(api_key).expect("schema");
        for version in min..=max {
            for n in 0..6 {
                let mut rng = Rng::new(1 + version as u64);
                let (body, prefixes) = Sampler::hostile_body(schema, version, &mut rng, n);
                if n >= prefixes {
                    break;
                }
                let mut stream = connect(&broker);
                stream
                    .write_all(&frame(api_key, version, &body))
                    .expect("send");
                assert!(
                    is_closed(&mut stream),
                    "{api_key:?} v{version} with huge prefix {n} was answered"
                );
                sent += 1;
            }
        }
    }
    assert!(sent > 150, "only {sent} hostile requests");
    assert!(broker.is_running(), "broker died:\n{}", broker.log());

    // Record batches an attacker produces.
    common::sluice(
        &["topic", "create", "target", "-b", &broker.bootstrap()],
        None,
    );
    let huge_header_count = batch(0, 0, 1, &record(0, b"x", i64::from(i32::MAX)));
    assert_eq!(
        produce(&broker, "target", huge_header_count),
        INVALID_RECORD
    );
    let codec_five = batch(0, 5, 1, &record(0, b"x", 0));
    assert_eq!(
        produce(&broker, "target", codec_five),
        UNSUPPORTED_COMPRESSION_TYPE
    );
    // 200 MiB of zeros in about 200 KiB of gzip: refused at the inflation
    // limit (max_uncompressed_batch_bytes), not inflated in full.
    let bomb = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            encoder.write_all(&zeros).expect("gzip");
        }
        encoder.finish().expect("gzip")
    };
    assert!(bomb.len() < 1_000_000);
    assert_eq!(
        produce(&broker, "target", batch(0, 1, 1, &bomb)),
        MESSAGE_TOO_LARGE
    );
    let garbage_inside = batch(0, 1, 3, &gzip(b"these bytes are not records at all"));
    assert_eq!(produce(&broker, "target", garbage_inside), INVALID_RECORD);
    let good_compressed = {
        let section: Vec<u8> = (0..3).flat_map(|i| record(i, b"fine", 0)).collect();
        batch(0, 1, 3, &gzip(&section))
    };
    assert_eq!(produce(&broker, "target", good_compressed), 0);

    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().expect("producer thread");
    assert_eq!(deliveries.failed.load(Ordering::Relaxed), 0);
    assert_eq!(deliveries.ok.load(Ordering::Relaxed), sent);
    let consumed = common::sluice(
        &[
            "consume",
            "steady",
            "--from-beginning",
            "--max-messages",
            &sent.to_string(),
            "-b",
            &broker.bootstrap(),
        ],
        None,
    );
    assert_eq!(consumed.lines().count() as u64, sent);
    let log = broker.log();
    assert!(log.contains("malformed Metadata v12 request"), "{log}");
    assert!(log.contains("peer=127.0.0.1:"), "{log}");
}

/// The ListOffsets answer for the first record at or after `timestamp`.
fn offset_for_time(broker: &Broker, topic: &str, timestamp: i64) -> (i16, i64) {
    let mut partition = ListOffsetsPartition::default();
    partition.partition_index = 0;
    partition.timestamp = timestamp;
    let mut list_topic = ListOffsetsTopic::default();
    list_topic.name = TopicName(StrBytes::from_string(topic.to_string()));
    list_topic.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = vec![list_topic];
    let response: ListOffsetsResponse = exchange(broker, ApiKey::ListOffsets, 7, &request);
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset)
}

/// A batch an older build stored without checking its records (header
/// count 2^31-1 and no headers) is written straight into the segment. The
/// broker restarts over it, answers ListOffsets by timestamp at batch level
/// with a log line, and serves everything else.
#[test]
fn poisoned_stored_batches_do_not_stop_a_restart() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    common::sluice(&["topic", "create", "poisoned", "-b", &bootstrap], None);
    common::sluice(&["produce", "poisoned", "-b", &bootstrap], Some("before\n"));
    broker.kill9();
    let segment = broker
        .data_dir()
        .join("poisoned-0")
        .join("00000000000000000000.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("segment file");
    // Far in the future, so that a lookup by time lands on it.
    let poison = record(0, b"poison", i64::from(i32::MAX));
    file.write_all(&batch_at(1, 0, 1, &poison, 4_000_000_000_000))
        .expect("write poisoned batch");
    drop(file);
    broker.restart();
    let bootstrap = broker.bootstrap();

    let (error, offset) = offset_for_time(&broker, "poisoned", 3_000_000_000_000);
    assert_eq!(
        (error, offset),
        (0, 1),
        "batch-level answer for the poisoned batch"
    );
    assert!(broker.log().contains("do not decode"), "{}", broker.log());
    common::sluice(&["produce", "poisoned", "-b", &bootstrap], Some("after\n"));
    let consumed = common::sluice(
        &[
            "consume",
            "poisoned",
            "--partition",
            "0",
            "--offset",
            "2",
            "--max-messages",
            "1",
            "-b",
            &bootstrap,
        ],
        None,
    );
    assert_eq!(consumed.trim(), "after");
    assert!(broker.is_running());
}
