//! The wire encoding of a Fetch response whose records stay in the segment
//! files, so that the server can send them with sendfile instead of copying
//! them through user space.
//!
//! Everything but the records is encoded here by hand, field by field, as
//! Kafka's `FetchResponse.json` lays it out for versions 4 to 18; a test
//! checks the result byte for byte against the `kafka-protocol` crate's own
//! encoding. Tagged fields that Sluice never sets (diverging epoch, current
//! leader, snapshot id, node endpoints) are always written as absent.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchResponse;
use sluice_storage::FileRegion;

use crate::server::EncodedBody;

/// Fetch v12 is the first flexible version (compact arrays, tagged fields).
const FIRST_FLEXIBLE_VERSION: i16 = 12;
/// Fetch v13 names topics by id.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

/// Encodes `response` at `version`. `records` holds, for each partition in
/// the order of the response, the region its records are in; a partition
/// without one sends its `records` field as it is.
pub fn encode(
    response: &FetchResponse,
    records: &[Option<FileRegion>],
    version: i16,
) -> EncodedBody {
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut body = EncodedBody::default();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(response.error_code);
        buf.put_i32(response.session_id);
    }
    put_array_len(&mut buf, response.responses.len(), flexible);
    let mut regions = records.iter();
    for topic in &response.responses {
        if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            buf.put_slice(topic.topic_id.as_bytes());
        } else {
            put_string(&mut buf, topic.topic.as_bytes(), flexible);
        }
        put_array_len(&mut buf, topic.partitions.len(), flexible);
        for partition in &topic.partitions {
            put_partition_header(&mut buf, partition, version);
            match regions.next().and_then(Option::as_ref) {
                Some(region) => {
                    put_bytes_len(&mut buf, Some(region.len()), flexible);
                    body.push_bytes(buf.split().freeze());
                    body.push_file(region.clone());
                }
                None => {
                    let bytes = partition.records.as_deref();
                    put_bytes_len(&mut buf, bytes.map(<[u8]>::len), flexible);
                    buf.put_slice(bytes.unwrap_or_default());
                }
            }
            if flexible {
                buf.put_u8(0); // no tagged fields
            }
        }
        if flexible {
            buf.put_u8(0);
        }
    }
    if flexible {
        buf.put_u8(0);
    }
    body.push_bytes(buf.freeze());
    body
}

/// A partition's fields before its records.
fn put_partition_header(buf: &mut BytesMut, p: &PartitionData, version: i16) {
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    buf.put_i32(p.partition_index);
    buf.put_i16(p.error_code);
    buf.put_i64(p.high_watermark);
    buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        buf.put_i64(p.log_start_offset);
    }
    match &p.aborted_transactions {
        None if flexible => put_unsigned_varint(buf, 0),
        None => buf.put_i32(-1),
        Some(aborted) => {
            put_array_len(buf, aborted.len(), flexible);
            for transaction in aborted {
                buf.put_i64(transaction.producer_id.0);
                buf.put_i64(transaction.first_offset);
                if flexible {
                    buf.put_u8(0);
                }
            }
        }
    }
    if version >= 11 {
        buf.put_i32(p.preferred_read_replica.0);
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Compact encodings store length + 1 as an unsigned varint (0 is null).
fn put_compact_len(buf: &mut BytesMut, len: Option<usize>) {
    let encoded = len.map_or(0, |n| n.saturating_add(1).min(u32::MAX as usize) as u32);
    put_unsigned_varint(buf, encoded);
}

fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_compact_len(buf, Some(len));
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_bytes_len(buf: &mut BytesMut, len: Option<usize>, flexible: bool) {
    if flexible {
        put_compact_len(buf, len);
    } else {
        buf.put_i32(len.map_or(-1, |n| n as i32));
    }
}

fn put_string(buf: &mut BytesMut, s: &[u8], flexible: bool) {
    if flexible {
        put_compact_len(buf, Some(s.len()));
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use std::io::Write;

    fn partition(index: i32, records: Option<Bytes>, aborted: Option<usize>) -> PartitionData {
        let mut p = PartitionData::default();
        p.partition_index = index;
        p.error_code = if records.is_none() { 3 } else { 0 };
        p.high_watermark = 1000 + i64::from(index);
        p.last_stable_offset = 900;
        p.log_start_offset = 7;
        p.preferred_read_replica = BrokerId(-1);
        p.aborted_transactions = aborted.map(|n| {
            (0..n)
                .map(|i| {
                    let mut t = AbortedTransaction::default();
                    t.producer_id = ProducerId(i as i64 + 5);
                    t.first_offset = 42;
                    t
                })
                .collect()
        });
        p.records = records;
        p
    }

    /// Every version's encoding equals kafka-protocol's, with records given
    /// inline or as file regions.
    #[test]
    fn matches_kafka_protocol_encoding_for_every_version() {
        let payloads: Vec<Vec<u8>> = vec![vec![1u8; 300], vec![], vec![9u8; 70_000]];
        let mut file = tempfile::tempfile().expect("tempfile");
        let mut positions = Vec::new();
        let mut at = 0u64;
        for p in &payloads {
            positions.push(at);
            file.write_all(p).expect("write");
            at += p.len() as u64;
        }
        let file = std::sync::Arc::new(file);

        let mut response = FetchResponse::default();
        response.throttle_time_ms = 3;
        response.session_id = 0;
        let mut t1 = FetchableTopicResponse::default();
        t1.topic = TopicName(StrBytes::from_static_str("orders"));
        t1.topic_id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        t1.partitions = vec![
            partition(0, Some(Bytes::from(payloads[0].clone())), Some(0)),
            partition(1, None, None),
            partition(2, Some(Bytes::from(payloads[1].clone())), Some(2)),
        ];
        let mut t2 = FetchableTopicResponse::default();
        t2.topic = TopicName(StrBytes::from_static_str("x"));
        t2.partitions = vec![partition(0, Some(Bytes::from(payloads[2].clone())), None)];
        response.responses = vec![t1, t2];

        let mut regionless = response.clone();
        let mut regions = Vec::new();
        let mut next = 0;
        for topic in &mut regionless.responses {
            for p in &mut topic.partitions {
                if p.records.take().is_some() {
                    let len = payloads[next].len();
                    regions.push(Some(FileRegion::new(
                        std::sync::Arc::clone(&file),
                        positions[next],
                        len,
                    )));
                    next += 1;
                } else {
                    regions.push(None);
                }
            }
        }

        for version in 4..=18 {
            // Topics are named by name before v13 and by id from v13 on.
            let for_version = |r: &FetchResponse| {
                let mut r = r.clone();
                for t in &mut r.responses {
                    if version >= FIRST_VERSION_WITH_TOPIC_IDS {
                        t.topic = TopicName::default();
                    } else {
                        t.topic_id = uuid::Uuid::nil();
                    }
                }
                r
            };
            let (response, regionless) = (for_version(&response), for_version(&regionless));
            let mut expected = BytesMut::new();
            response.encode(&mut expected, version).expect("encode");
            let inline = encode(&response, &[], version)
                .to_vec()
                .expect("materialize");
            assert_eq!(inline, expected.to_vec(), "inline records, v{version}");
            let zero_copy = encode(&regionless, &regions, version)
                .to_vec()
                .expect("materialize");
            assert_eq!(zero_copy, expected.to_vec(), "file regions, v{version}");
        }
    }
}
