//! Raw Kafka requests over a plain socket, for tests that send what no
//! client library would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Broker;

pub fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream
}

/// True once the broker has closed the connection.
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    }
}

/// A size-prefixed frame: the request header for `api_key` at `version`
/// followed by `body`.
pub fn frame(api_key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("raw-test"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    buf.extend_from_slice(body);
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// A frame carrying `message` encoded at `version`.
pub fn message_frame<M: Encodable>(api_key: ApiKey, version: i16, message: &M) -> Vec<u8> {
    let mut body = BytesMut::new();
    message.encode(&mut body, version).expect("body");
    frame(api_key, version, &body)
}

/// Reads one response frame and strips its header.
pub fn read_response(stream: &mut TcpStream, api_key: ApiKey, version: i16) -> Bytes {
    read_response_with_id(stream, api_key, version).1
}

/// Reads one response frame: its correlation id, and its body.
pub fn read_response_with_id(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
) -> (i32, Bytes) {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).expect("response body");
    let mut response = Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, api_key.response_header_version(version))
        .expect("response header");
    (header.correlation_id, response)
}

/// Sends `message` on a new connection and decodes the response.
pub fn exchange<M: Encodable, R: Decodable>(
    broker: &Broker,
    api_key: ApiKey,
    version: i16,
    message: &M,
) -> R {
    let mut stream = connect(broker);
    stream
        .write_all(&message_frame(api_key, version, message))
        .expect("send");
    let mut response = read_response(&mut stream, api_key, version);
    R::decode(&mut response, version).expect("response")
}

/// A Produce v9 of `records` to partition 0 of `topic`.
pub fn produce_request(topic: &str, records: impl Into<Bytes>, acks: i16) -> ProduceRequest {
    let mut data = PartitionProduceData::default();
    data.index = 0;
    data.records = Some(records.into());
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_string()));
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 10_000;
    request.topic_data = vec![topic_data];
    request
}

/// The error code of producing `records` (acks=all) to partition 0 of
/// `topic`.
pub fn produce(broker: &Broker, topic: &str, records: impl Into<Bytes>) -> i16 {
    produce_with_acks(broker, topic, records, -1)
}

/// The error code of producing `records` with `acks` to partition 0 of
/// `topic` (acks must not be 0: that gets no answer).
pub fn produce_with_acks(
    broker: &Broker,
    topic: &str,
    records: impl Into<Bytes>,
    acks: i16,
) -> i16 {
    let response: ProduceResponse = exchange(
        broker,
        ApiKey::Produce,
        9,
        &produce_request(topic, records, acks),
    );
    response.responses[0].partition_responses[0].error_code
}

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One record: no key, `value`, and `header_count` as its header count
/// (whether or not that many headers follow).
pub fn record(offset_delta: i64, value: &[u8], header_count: i64) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, 0);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, header_count);
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// A magic-2 batch with a correct CRC around a records section as given.
pub fn batch(base_offset: i64, attributes: i16, count: i32, section: &[u8]) -> Vec<u8> {
    batch_at(base_offset, attributes, count, section, 1_700_000_000_000)
}

pub fn batch_at(
    base_offset: i64,
    attributes: i16,
    count: i32,
    section: &[u8],
    timestamp: i64,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
