//! Idempotent producers over raw requests, so that each rule of the
//! producer state can be tried on its own: InitProducerId gives a new
//! producer id at epoch 0; a retried batch is answered with its first
//! offsets and not stored again (also after a kill -9 and restart); a gap
//! in the sequence is OUT_OF_ORDER_SEQUENCE_NUMBER; a new epoch must start
//! at sequence 0 and fences the old one (INVALID_PRODUCER_EPOCH); an
//! unknown producer id is accepted at any sequence (KIP-360); a
//! transactional batch outside a transaction is refused. DescribeProducers
//! shows what each partition knows.

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use common::raw::{exchange, produce_request};
use common::Broker;

const NONE: i16 = 0;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A batch of `count` records from producer `pid` at `epoch`, its first
/// record at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, count: i32, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("{pid}-{epoch}-{}", seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// (error code, base offset) of producing `records` to `topic`-0.
fn produce(broker: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let response: ProduceResponse = exchange(
        broker,
        ApiKey::Produce,
        9,
        &produce_request(topic, records, -1),
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn init_producer_id(broker: &Broker) -> InitProducerIdResponse {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = None;
    request.transaction_timeout_ms = 60_000;
    exchange(broker, ApiKey::InitProducerId, 4, &request)
}

#[test]
fn the_producer_state_rules_hold_and_survive_a_kill_9() {
    let mut broker = Broker::start();
    let topic = "idem";
    common::sluice(
        &[
            "topic",
            "create",
            topic,
            "-p",
            "1",
            "-b",
            &broker.bootstrap(),
        ],
        None,
    );

    let first = init_producer_id(&broker);
    assert_eq!(first.error_code, NONE);
    assert_eq!(first.producer_epoch, 0);
    let second = init_producer_id(&broker);
    assert_ne!(first.producer_id, second.producer_id, "each call, a new id");
    let pid = first.producer_id.0;

    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 0, 3, false)),
        (NONE, 0)
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 3, 2, false)),
        (NONE, 3)
    );
    // A retry of either batch: its offsets again, nothing stored.
    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 0, 3, false)),
        (NONE, 0)
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 3, 2, false)),
        (NONE, 3)
    );
    // A gap: something between was lost.
    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 7, 1, false)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // A new epoch starts at 0, and fences the old one.
    assert_eq!(
        produce(&broker, topic, batch(pid, 1, 5, 1, false)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 1, 0, 1, false)),
        (NONE, 5)
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 0, 5, 1, false)).0,
        INVALID_PRODUCER_EPOCH
    );
    // A producer the partition does not know: any sequence (KIP-360).
    assert_eq!(
        produce(&broker, topic, batch(9_999_999, 0, 41, 2, false)),
        (NONE, 6)
    );
    // A transactional batch outside any transaction: refused, not stored.
    assert_eq!(
        produce(&broker, topic, batch(second.producer_id.0, 0, 0, 1, true)).0,
        INVALID_TXN_STATE
    );

    // After a kill -9 the state is rebuilt from the log: a retry is still
    // recognised, a gap still refused, and the log holds each batch once.
    broker.restart();
    assert_eq!(
        produce(&broker, topic, batch(pid, 1, 0, 1, false)),
        (NONE, 5)
    );
    assert_eq!(
        produce(&broker, topic, batch(9_999_999, 0, 41, 2, false)),
        (NONE, 6)
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 1, 2, 1, false)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce(&broker, topic, batch(pid, 1, 1, 1, false)),
        (NONE, 8)
    );
    let described = common::sluice(
        &["topic", "describe", topic, "-b", &broker.bootstrap()],
        None,
    );
    assert_eq!(common::end_offset(&described, 0), 9, "{described}");
    // Ids handed out before the restart are not handed out again.
    let after = init_producer_id(&broker);
    assert!(after.producer_id.0 > second.producer_id.0);

    // DescribeProducers lists both producers, with epoch and last sequence.
    let mut request = DescribeProducersRequest::default();
    let mut wanted = TopicRequest::default();
    wanted.name = TopicName(StrBytes::from_static_str(topic));
    wanted.partition_indexes = vec![0, 7];
    request.topics = vec![wanted];
    let described: DescribeProducersResponse =
        exchange(&broker, ApiKey::DescribeProducers, 0, &request);
    let partitions = &described.topics[0].partitions;
    assert_eq!(partitions[0].error_code, NONE);
    let producers: Vec<(i64, i32, i32)> = partitions[0]
        .active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.producer_epoch, p.last_sequence))
        .collect();
    assert_eq!(producers, vec![(pid, 1, 1), (9_999_999, 0, 42)]);
    assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

/// Produce requests are pipelined on a connection: an idempotent producer
/// sends twenty without waiting, with a Metadata request among them, and
/// every one is appended in order (each batch's sequence follows the one
/// before, so any reordering would be refused) and answered in request
/// order, under the default fsync policy.
#[test]
fn pipelined_produce_requests_are_appended_and_answered_in_order() {
    use std::io::Write;

    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    let broker = Broker::start();
    common::create_topic(&broker, "pipelined", 1);
    let pid = init_producer_id(&broker).producer_id.0;
    let mut stream = common::raw::connect(&broker);
    let mut sent = Vec::new();
    for i in 0..20i32 {
        let (api_key, version, mut frame) = if i == 10 {
            let frame =
                common::raw::message_frame(ApiKey::Metadata, 12, &MetadataRequest::default());
            (ApiKey::Metadata, 12, frame)
        } else {
            let seq = sent.iter().filter(|(k, _)| *k == ApiKey::Produce).count() as i32 * 5;
            let request = produce_request("pipelined", batch(pid, 0, seq, 5, false), -1);
            (
                ApiKey::Produce,
                9,
                common::raw::message_frame(ApiKey::Produce, 9, &request),
            )
        };
        // The correlation id follows the size prefix, api key and version.
        frame[8..12].copy_from_slice(&(1000 + i).to_be_bytes());
        stream.write_all(&frame).expect("send");
        sent.push((api_key, version));
    }
    let mut next_offset = 0;
    for (i, (api_key, version)) in sent.into_iter().enumerate() {
        let (correlation_id, mut body) =
            common::raw::read_response_with_id(&mut stream, api_key, version);
        assert_eq!(correlation_id, 1000 + i as i32, "answers in request order");
        if api_key == ApiKey::Metadata {
            let metadata = <MetadataResponse as kafka_protocol::protocol::Decodable>::decode(
                &mut body, version,
            )
            .expect("metadata");
            assert!(!metadata.brokers.is_empty());
            continue;
        }
        let response =
            <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, version)
                .expect("produce");
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (NONE, next_offset)
        );
        next_offset += 5;
    }
}
