//! The records the group coordinator keeps in `__consumer_offsets`: one
//! key per committed partition offset, the latest value wins, a null value
//! (tombstone) deletes. Sluice's own versioned binary layout:
//!
//! ```text
//! key:   version u8 (0), kind u8 (0 = offset), group (u16 length + UTF-8),
//!        topic (u16 length + UTF-8), partition i32
//! value: version u8 (0), offset i64, leader epoch i32, commit time i64,
//!        metadata (i32 length, -1 for null, + UTF-8)
//! ```
//!
//! Decoding never trusts a length: a record that does not parse is skipped
//! with a log line, so a damaged record cannot stop the coordinator.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// The key of an offset record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

const VERSION: u8 = 0;
const KIND_OFFSET: u8 = 0;

pub fn encode_key(key: &OffsetKey) -> Bytes {
    let mut out = BytesMut::with_capacity(12 + key.group.len() + key.topic.len());
    out.put_u8(VERSION);
    out.put_u8(KIND_OFFSET);
    put_short_string(&mut out, &key.group);
    put_short_string(&mut out, &key.topic);
    out.put_i32(key.partition);
    out.freeze()
}

pub fn encode_value(value: &CommittedOffset) -> Bytes {
    let metadata = value.metadata.as_deref();
    let mut out = BytesMut::with_capacity(25 + metadata.map_or(0, str::len));
    out.put_u8(VERSION);
    out.put_i64(value.offset);
    out.put_i32(value.leader_epoch);
    out.put_i64(value.commit_timestamp_ms);
    match metadata {
        Some(m) => {
            out.put_i32(m.len() as i32);
            out.put_slice(m.as_bytes());
        }
        None => out.put_i32(-1),
    }
    out.freeze()
}

fn put_short_string(out: &mut BytesMut, s: &str) {
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

pub fn decode_key(mut buf: &[u8]) -> Option<OffsetKey> {
    if buf.remaining() < 2 || buf.get_u8() != VERSION || buf.get_u8() != KIND_OFFSET {
        return None;
    }
    let group = short_string(&mut buf)?;
    let topic = short_string(&mut buf)?;
    if buf.remaining() != 4 {
        return None;
    }
    Some(OffsetKey {
        group,
        topic,
        partition: buf.get_i32(),
    })
}

pub fn decode_value(mut buf: &[u8]) -> Option<CommittedOffset> {
    if buf.remaining() < 25 || buf.get_u8() != VERSION {
        return None;
    }
    let offset = buf.get_i64();
    let leader_epoch = buf.get_i32();
    let commit_timestamp_ms = buf.get_i64();
    let len = buf.get_i32();
    let metadata = match len {
        -1 => None,
        n if n >= 0 && n as usize == buf.remaining() => Some(String::from_utf8(buf.to_vec()).ok()?),
        _ => return None,
    };
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn short_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_u16() as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = std::str::from_utf8(&buf[..len]).ok()?.to_string();
    buf.advance(len);
    Some(s)
}

/// Java's `String.hashCode`, which Kafka uses to place a group on a
/// partition of `__consumer_offsets`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The partition of `__consumer_offsets` that holds `group`, as Kafka
/// chooses it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_string_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = OffsetKey {
            group: "g".into(),
            topic: "orders".into(),
            partition: 7,
        };
        assert_eq!(decode_key(&encode_key(&key)), Some(key));
        for metadata in [None, Some(String::new()), Some("hello".to_string())] {
            let value = CommittedOffset {
                offset: 42,
                leader_epoch: 3,
                metadata,
                commit_timestamp_ms: 1_700_000_000_000,
            };
            assert_eq!(decode_value(&encode_value(&value)), Some(value));
        }
    }

    #[test]
    fn damaged_records_do_not_decode() {
        assert_eq!(decode_key(&[0, 0, 0xff, 0xff]), None);
        assert_eq!(decode_value(&[0; 10]), None);
        let mut value = encode_value(&CommittedOffset {
            offset: 1,
            leader_epoch: 0,
            metadata: Some("abc".into()),
            commit_timestamp_ms: 0,
        })
        .to_vec();
        value.truncate(value.len() - 1);
        assert_eq!(decode_value(&value), None);
    }

    #[test]
    fn groups_land_where_kafka_puts_them() {
        // Java: "".hashCode() == 0, "a".hashCode() == 97, "ab" == 97*31+98.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(partition_for("a", 50), 97 % 50);
    }
}
