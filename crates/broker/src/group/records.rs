//! The records the group coordinator keeps in `__consumer_offsets`: one
//! key per committed partition offset, the latest value wins, a null value
//! (tombstone) deletes. Sluice's own versioned binary layout:
//!
//! ```text
//! offset key:   version u8 (0), kind u8 (0), group (u16 length + UTF-8),
//!               topic (u16 length + UTF-8), partition i32
//! offset value: version u8 (0), offset i64, leader epoch i32, commit time i64,
//!               metadata (i32 length, -1 for null, + UTF-8)
//! group key:    version u8 (0), kind u8 (1), group (u16 length + UTF-8)
//! group value:  version u8 (0), protocol type, protocol, leader (strings),
//!               generation i32, member count i32, then per member: member
//!               id, instance id (u16 0xffff for none), client id, client
//!               host, session and rebalance timeouts (i32 ms), protocol
//!               count i32 with (name, metadata bytes) each, assignment bytes
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
const KIND_GROUP: u8 = 1;

/// A stable group as stored, so that a restarted broker keeps its
/// generation and members (who go on heartbeating as if nothing happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub generation: i32,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
}

/// What a key in `__consumer_offsets` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset(OffsetKey),
    Group(String),
}

pub fn encode_group_key(group: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_u8(VERSION);
    out.put_u8(KIND_GROUP);
    put_short_string(&mut out, group);
    out.freeze()
}

pub fn encode_group_value(group: &StoredGroup) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(VERSION);
    put_short_string(&mut out, &group.protocol_type);
    put_short_string(&mut out, &group.protocol);
    put_short_string(&mut out, &group.leader);
    out.put_i32(group.generation);
    out.put_i32(group.members.len() as i32);
    for m in &group.members {
        put_short_string(&mut out, &m.member_id);
        match &m.instance_id {
            Some(id) => put_short_string(&mut out, id),
            None => out.put_u16(u16::MAX),
        }
        put_short_string(&mut out, &m.client_id);
        put_short_string(&mut out, &m.client_host);
        out.put_i32(m.session_timeout_ms);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.protocols.len() as i32);
        for (name, metadata) in &m.protocols {
            put_short_string(&mut out, name);
            put_bytes(&mut out, metadata);
        }
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

/// Decodes any key: an offset's or a group's.
pub fn decode_any_key(buf: &[u8]) -> Option<Key> {
    match buf.get(..2)? {
        [VERSION, KIND_OFFSET] => decode_key(buf).map(Key::Offset),
        [VERSION, KIND_GROUP] => {
            let mut rest = &buf[2..];
            let group = short_string(&mut rest)?;
            rest.is_empty().then_some(Key::Group(group))
        }
        _ => None,
    }
}

pub fn decode_group_value(mut buf: &[u8]) -> Option<StoredGroup> {
    if buf.remaining() < 1 || buf.get_u8() != VERSION {
        return None;
    }
    let protocol_type = short_string(&mut buf)?;
    let protocol = short_string(&mut buf)?;
    let leader = short_string(&mut buf)?;
    let generation = take_i32(&mut buf)?;
    let count = take_i32(&mut buf)?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = short_string(&mut buf)?;
        let instance_id = if buf.get(..2)? == [0xff, 0xff] {
            buf.advance(2);
            None
        } else {
            Some(short_string(&mut buf)?)
        };
        let client_id = short_string(&mut buf)?;
        let client_host = short_string(&mut buf)?;
        let session_timeout_ms = take_i32(&mut buf)?;
        let rebalance_timeout_ms = take_i32(&mut buf)?;
        let protocol_count = take_i32(&mut buf)?;
        let mut protocols = Vec::new();
        for _ in 0..protocol_count.max(0) {
            let name = short_string(&mut buf)?;
            protocols.push((name, take_bytes(&mut buf)?));
        }
        let assignment = take_bytes(&mut buf)?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment,
        });
    }
    buf.is_empty().then_some(StoredGroup {
        protocol_type,
        protocol,
        leader,
        generation,
        members,
    })
}

fn take_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn take_bytes(buf: &mut &[u8]) -> Option<Bytes> {
    let len = usize::try_from(take_i32(buf)?).ok()?;
    let bytes = Bytes::copy_from_slice(buf.get(..len)?);
    buf.advance(len);
    Some(bytes)
}

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
    fn groups_round_trip() {
        let group = StoredGroup {
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            leader: "m1".into(),
            generation: 7,
            members: vec![
                StoredMember {
                    member_id: "m1".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 30_000,
                    protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
                    assignment: Bytes::from_static(b"a"),
                },
                StoredMember {
                    member_id: "m2".into(),
                    instance_id: Some("w2".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 30_000,
                    protocols: vec![],
                    assignment: Bytes::new(),
                },
            ],
        };
        assert_eq!(decode_group_value(&encode_group_value(&group)), Some(group));
        assert_eq!(
            decode_any_key(&encode_group_key("g")),
            Some(Key::Group("g".into()))
        );
        let mut lying = encode_group_value(&StoredGroup {
            members: vec![],
            ..decode_group_value(&encode_group_value(&StoredGroup {
                protocol_type: String::new(),
                protocol: String::new(),
                leader: String::new(),
                generation: 1,
                members: vec![],
            }))
            .unwrap()
        })
        .to_vec();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            decode_group_value(&lying),
            None,
            "a member count with no members"
        );
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
