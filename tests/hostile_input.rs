//! Bad input over raw sockets: garbage, impossible frame sizes, truncated
//! frames, unknown APIs and versions, corrupt or oversized record batches.
//! Each gets a Kafka error code or a closed connection; nothing of a
//! rejected batch is ever readable, and the broker keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::{connect, is_closed, message_frame, produce_request, produce_with_acks};
use common::{wait_until, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, MetadataRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNSUPPORTED_VERSION: i16 = 35;
const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
const INVALID_RECORD: i16 = 87;

fn request_bytes<M: Encodable>(
    api_key: i16,
    version: i16,
    header_version: i16,
    body: &M,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("hostile-test"));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).expect("header");
    body.encode(&mut buf, version).expect("body");
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

fn read_frame(stream: &mut TcpStream) -> Bytes {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    Bytes::from(body)
}

/// Fetches partition 0 of `topic` from offset 0 (Fetch v12) and returns the
/// records bytes and the high watermark.
fn fetch_raw(broker: &Broker, topic: &str) -> (Bytes, i64) {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = 0;
    partition.partition_max_bytes = 1 << 20;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_string()));
    fetch_topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 0;
    request.max_bytes = 1 << 20;
    request.topics = vec![fetch_topic];
    let mut stream = connect(broker);
    let version = 12;
    let api = ApiKey::Fetch;
    stream
        .write_all(&request_bytes(
            api as i16,
            version,
            api.request_header_version(version),
            &request,
        ))
        .expect("send");
    let mut frame = read_frame(&mut stream);
    ResponseHeader::decode(&mut frame, api.response_header_version(version)).expect("header");
    let response = FetchResponse::decode(&mut frame, version).expect("fetch response");
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    (
        data.records.clone().unwrap_or_default(),
        data.high_watermark,
    )
}

fn valid_batch(value_len: usize) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(vec![b'v'; value_len])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.to_vec()
}

fn assert_still_serving(broker: &mut Broker) {
    assert!(broker.is_running(), "broker died; log:\n{}", broker.log());
    let mut stream = connect(broker);
    let api = ApiKey::Metadata;
    stream
        .write_all(&request_bytes(
            api as i16,
            12,
            api.request_header_version(12),
            &MetadataRequest::default(),
        ))
        .expect("send metadata");
    assert!(!read_frame(&mut stream).is_empty());
}

#[test]
fn malformed_frames_close_the_connection_and_nothing_else() {
    let mut broker = Broker::start();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "http garbage",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("2 GiB length", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("length below a header", {
            let mut f = 3i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0, 0, 0]);
            f
        }),
        ("unknown API key", {
            let mut f = 8i32.to_be_bytes().to_vec();
            f.extend_from_slice(&9999i16.to_be_bytes());
            f.extend_from_slice(&0i16.to_be_bytes());
            f.extend_from_slice(&7i32.to_be_bytes());
            f
        }),
        ("unsupported Metadata version", {
            let api = ApiKey::Metadata;
            request_bytes(
                api as i16,
                12,
                api.request_header_version(12),
                &MetadataRequest::default(),
            )
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 7 { 99 } else { b })
            .collect()
        }),
        ("truncated body", {
            let api = ApiKey::Metadata;
            let mut frame = request_bytes(
                api as i16,
                12,
                api.request_header_version(12),
                &MetadataRequest::default(),
            );
            frame.truncate(frame.len() - 2);
            let size = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&size.to_be_bytes());
            frame
        }),
    ];
    for (what, bytes) in cases {
        let mut stream = connect(&broker);
        stream.write_all(&bytes).expect("send");
        assert!(is_closed(&mut stream), "{what}: connection stays open");
        assert_still_serving(&mut broker);
    }

    // A frame whose body never arrives: the peer gives up mid-frame.
    let mut stream = connect(&broker);
    stream.write_all(&100i32.to_be_bytes()).expect("send");
    stream.write_all(&[1, 2, 3, 4, 5]).expect("send");
    drop(stream);
    assert_still_serving(&mut broker);

    // Every close was logged with the peer's address.
    wait_until("close log lines", Duration::from_secs(10), || {
        broker.log().matches("closing connection").count() >= 7
    });
    let log = broker.log();
    assert!(log.contains("peer=127.0.0.1:"), "{log}");
    assert!(log.contains("exceeds max_request_bytes"), "{log}");
    assert!(log.contains("unsupported API key 9999"), "{log}");
}

#[test]
fn api_versions_newer_than_known_gets_v0_unsupported_version() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let api = ApiKey::ApiVersions;
    // Version 99 with a flexible (v2) request header, as a future client would send.
    let mut frame = request_bytes(
        api as i16,
        3,
        2,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    );
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    stream.write_all(&frame).expect("send");
    let mut response = read_frame(&mut stream);
    let header = ResponseHeader::decode(&mut response, 0).expect("v0 header");
    assert_eq!(header.correlation_id, 42);
    let body = ApiVersionsResponse::decode(&mut response, 0).expect("v0 body");
    assert_eq!(body.error_code, UNSUPPORTED_VERSION);
    assert!(body
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
}

#[test]
fn rejected_batches_get_kafka_errors_and_are_never_readable() {
    let mut broker = Broker::start();
    common::sluice(
        &[
            "topic",
            "create",
            "guarded",
            "-c",
            "max.message.bytes=2000",
            "-b",
            &broker.bootstrap(),
        ],
        None,
    );

    let mut wrong_crc = valid_batch(50);
    let last = wrong_crc.len() - 1;
    wrong_crc[last] ^= 0xff;
    assert_eq!(
        produce_with_acks(&broker, "guarded", wrong_crc, -1),
        CORRUPT_MESSAGE
    );

    let mut impossible_length = valid_batch(50);
    impossible_length[8..12].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert_eq!(
        produce_with_acks(&broker, "guarded", impossible_length, -1),
        CORRUPT_MESSAGE
    );

    let mut negative_length = valid_batch(50);
    negative_length[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(
        produce_with_acks(&broker, "guarded", negative_length, -1),
        CORRUPT_MESSAGE
    );

    let truncated = valid_batch(50);
    let truncated = Bytes::copy_from_slice(&truncated[..truncated.len() - 10]);
    assert_eq!(
        produce_with_acks(&broker, "guarded", truncated, -1),
        CORRUPT_MESSAGE
    );

    let mut old_magic = valid_batch(50);
    old_magic[16] = 1;
    assert_eq!(
        produce_with_acks(&broker, "guarded", old_magic, -1),
        UNSUPPORTED_FOR_MESSAGE_FORMAT
    );

    // Correct CRC over records that do not add up: two claimed, one framed.
    let mut miscounted = valid_batch(50);
    miscounted[57..61].copy_from_slice(&2i32.to_be_bytes());
    miscounted[23..27].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&miscounted[21..]);
    miscounted[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce_with_acks(&broker, "guarded", miscounted, -1),
        INVALID_RECORD
    );

    let mut two_batches = valid_batch(10);
    two_batches.extend_from_slice(&valid_batch(10));
    assert_eq!(
        produce_with_acks(&broker, "guarded", two_batches, -1),
        INVALID_RECORD
    );

    assert_eq!(
        produce_with_acks(&broker, "guarded", Bytes::new(), -1),
        INVALID_RECORD
    );

    assert_eq!(
        produce_with_acks(&broker, "guarded", valid_batch(5000), -1),
        MESSAGE_TOO_LARGE
    );

    assert_eq!(
        produce_with_acks(&broker, "guarded", valid_batch(10), 5),
        INVALID_REQUIRED_ACKS
    );

    // acks=0: no response; a failure closes the connection (as Kafka does),
    // a success leaves it open.
    let mut bad_crc = valid_batch(10);
    bad_crc[70] ^= 1;
    let mut stream = connect(&broker);
    stream
        .write_all(&message_frame(
            ApiKey::Produce,
            9,
            &produce_request("guarded", bad_crc, 0),
        ))
        .expect("send");
    assert!(
        is_closed(&mut stream),
        "failed acks=0 produce keeps the connection"
    );

    // Nothing of the above is readable, before or after a restart.
    let (records, high_watermark) = fetch_raw(&broker, "guarded");
    assert!(records.is_empty());
    assert_eq!(high_watermark, 0);
    broker.restart();
    let (records, high_watermark) = fetch_raw(&broker, "guarded");
    assert!(records.is_empty());
    assert_eq!(high_watermark, 0);

    // A good batch still goes through and is the only thing stored.
    let good = valid_batch(10);
    assert_eq!(produce_with_acks(&broker, "guarded", good.clone(), -1), 0);
    let (records, high_watermark) = fetch_raw(&broker, "guarded");
    assert_eq!(high_watermark, 1);
    assert_eq!(records.len(), good.len());
    assert_eq!(&records[61..], &good[61..], "records stored as sent");
    assert_still_serving(&mut broker);
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let mut broker = Broker::start_with_config("max_connections = 2\n");
    // The harness's own readiness probe may still hold a slot briefly, so
    // wait until two connections are both served.
    let mut held = Vec::new();
    wait_until("two served connections", Duration::from_secs(10), || {
        held.retain_mut(|s: &mut TcpStream| {
            let api = ApiKey::Metadata;
            s.write_all(&request_bytes(
                api as i16,
                12,
                api.request_header_version(12),
                &MetadataRequest::default(),
            ))
            .is_ok()
                && {
                    let mut size = [0u8; 4];
                    s.read_exact(&mut size).is_ok() && {
                        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                        s.read_exact(&mut body).is_ok()
                    }
                }
        });
        if held.len() < 2 {
            held.push(connect(&broker));
        }
        held.len() == 2
    });
    let mut third = connect(&broker);
    assert!(is_closed(&mut third), "a third connection is served");
    drop(held);
    wait_until("a free slot", Duration::from_secs(10), || {
        let mut stream = connect(&broker);
        let api = ApiKey::Metadata;
        stream
            .write_all(&request_bytes(
                api as i16,
                12,
                api.request_header_version(12),
                &MetadataRequest::default(),
            ))
            .is_ok()
            && !is_closed(&mut stream)
    });
    assert!(broker.log().contains("max_connections reached"));
    assert!(broker.is_running());
}

#[test]
fn idle_and_stalled_connections_are_closed() {
    let mut broker = Broker::start_with_config("connection_idle_timeout_ms = 200\n");
    let mut idle = connect(&broker);
    assert!(is_closed(&mut idle), "idle connection stays open");
    // Half a frame, then silence.
    let mut stalled = connect(&broker);
    stalled.write_all(&100i32.to_be_bytes()).expect("send");
    stalled.write_all(&[0, 3]).expect("send");
    assert!(is_closed(&mut stalled), "stalled connection stays open");
    assert_still_serving(&mut broker);
}
