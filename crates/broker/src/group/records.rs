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

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::assignor::{Assignment, SubscribedTopics};

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
/// The first byte of a group value that holds a consumer group: layout 1
/// as first written, layout 2 with each member's classic protocol part.
const CONSUMER_GROUP_LAYOUT: u8 = 1;
const CONSUMER_GROUP_LAYOUT_WITH_CLASSIC: u8 = 2;

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

/// A consumer group (KIP-848 protocol) as stored: its epochs, the topics
/// its target was computed from, and each member with its subscription,
/// progress and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub subscribed: SubscribedTopics,
    pub members: Vec<StoredConsumerMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: u8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub target: Assignment,
    /// Set for a member of the classic protocol.
    pub classic: Option<StoredClassicMember>,
}

/// What a consumer group keeps of a member that joined with JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClassicMember {
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
}

/// Layout 1, after its first byte; strings have u32 lengths (u32::MAX
/// for none), UUIDs are 16 bytes:
///
/// ```text
/// epoch i32, assignment epoch i32,
/// topic count u32, each: name, id, partitions i32,
/// member count u32, each: member id, instance id, rack id, client id,
///   client host, rebalance timeout i32, name count u32 with names, regex,
///   assignor, epoch i32, previous epoch i32, state u8, then the assigned,
///   pending and target assignments, each: topic count u32, each: id,
///   partition count u32, partitions i32;
///   layout 2 only: classic u8 (0 or 1), if 1: session timeout i32,
///   protocol count u32, each: name, metadata (u32 length and bytes)
/// ```
pub fn encode_consumer_group_value(group: &StoredConsumerGroup) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(CONSUMER_GROUP_LAYOUT_WITH_CLASSIC);
    out.put_i32(group.epoch);
    out.put_i32(group.assignment_epoch);
    out.put_u32(group.subscribed.len() as u32);
    for (name, (id, partitions)) in &group.subscribed {
        put_str32(&mut out, Some(name));
        out.put_slice(id.as_bytes());
        out.put_i32(*partitions);
    }
    out.put_u32(group.members.len() as u32);
    for m in &group.members {
        put_str32(&mut out, Some(&m.member_id));
        put_str32(&mut out, m.instance_id.as_deref());
        put_str32(&mut out, m.rack_id.as_deref());
        put_str32(&mut out, Some(&m.client_id));
        put_str32(&mut out, Some(&m.client_host));
        out.put_i32(m.rebalance_timeout_ms);
        out.put_u32(m.subscribed_names.len() as u32);
        for name in &m.subscribed_names {
            put_str32(&mut out, Some(name));
        }
        put_str32(&mut out, m.subscribed_regex.as_deref());
        put_str32(&mut out, m.server_assignor.as_deref());
        out.put_i32(m.epoch);
        out.put_i32(m.previous_epoch);
        out.put_u8(m.state);
        for assignment in [&m.assigned, &m.pending_revocation, &m.target] {
            put_assignment(&mut out, assignment);
        }
        match &m.classic {
            None => out.put_u8(0),
            Some(classic) => {
                out.put_u8(1);
                out.put_i32(classic.session_timeout_ms);
                out.put_u32(classic.protocols.len() as u32);
                for (name, metadata) in &classic.protocols {
                    put_str32(&mut out, Some(name));
                    out.put_u32(metadata.len() as u32);
                    out.put_slice(metadata);
                }
            }
        }
    }
    out.freeze()
}

fn put_str32(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        None => out.put_u32(u32::MAX),
    }
}

fn put_assignment(out: &mut BytesMut, assignment: &Assignment) {
    out.put_u32(assignment.len() as u32);
    for (topic, partitions) in assignment {
        out.put_slice(topic.as_bytes());
        out.put_u32(partitions.len() as u32);
        for p in partitions {
            out.put_i32(*p);
        }
    }
}

fn decode_consumer_group(mut buf: &[u8], with_classic: bool) -> Option<StoredConsumerGroup> {
    let buf = &mut buf;
    let epoch = take_i32(buf)?;
    let assignment_epoch = take_i32(buf)?;
    let mut subscribed = SubscribedTopics::new();
    for _ in 0..take_count(buf)? {
        let name = take_str32(buf)??;
        let id = take_uuid(buf)?;
        subscribed.insert(name, (id, take_i32(buf)?));
    }
    let mut members = Vec::new();
    for _ in 0..take_count(buf)? {
        let member_id = take_str32(buf)??;
        let instance_id = take_str32(buf)?;
        let rack_id = take_str32(buf)?;
        let client_id = take_str32(buf)??;
        let client_host = take_str32(buf)??;
        let rebalance_timeout_ms = take_i32(buf)?;
        let mut subscribed_names = Vec::new();
        for _ in 0..take_count(buf)? {
            subscribed_names.push(take_str32(buf)??);
        }
        let subscribed_regex = take_str32(buf)?;
        let server_assignor = take_str32(buf)?;
        let epoch = take_i32(buf)?;
        let previous_epoch = take_i32(buf)?;
        let state = *buf.first()?;
        buf.advance(1);
        let assigned = take_assignment(buf)?;
        let pending_revocation = take_assignment(buf)?;
        let target = take_assignment(buf)?;
        let classic = if with_classic {
            take_classic_member(buf)?
        } else {
            None
        };
        members.push(StoredConsumerMember {
            member_id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            subscribed_names,
            subscribed_regex,
            server_assignor,
            epoch,
            previous_epoch,
            state,
            assigned,
            pending_revocation,
            target,
            classic,
        });
    }
    buf.is_empty().then_some(StoredConsumerGroup {
        epoch,
        assignment_epoch,
        subscribed,
        members,
    })
}

/// Outer None: malformed; inner None: not a classic member.
fn take_classic_member(buf: &mut &[u8]) -> Option<Option<StoredClassicMember>> {
    let flag = *buf.first()?;
    buf.advance(1);
    if flag == 0 {
        return Some(None);
    }
    let session_timeout_ms = take_i32(buf)?;
    let mut protocols = Vec::new();
    for _ in 0..take_count(buf)? {
        let name = take_str32(buf)??;
        let len = take_u32(buf)? as usize;
        let metadata = Bytes::copy_from_slice(buf.get(..len)?);
        buf.advance(len);
        protocols.push((name, metadata));
    }
    Some(Some(StoredClassicMember {
        session_timeout_ms,
        protocols,
    }))
}

/// A count, which each element must have at least one byte to back: a
/// damaged count cannot make the loop run past the data.
fn take_count(buf: &mut &[u8]) -> Option<u32> {
    let count = take_u32(buf)?;
    (count as usize <= buf.len()).then_some(count)
}

fn take_u32(buf: &mut &[u8]) -> Option<u32> {
    (buf.remaining() >= 4).then(|| buf.get_u32())
}

/// Outer None: malformed; inner None: a null string.
fn take_str32(buf: &mut &[u8]) -> Option<Option<String>> {
    let len = take_u32(buf)?;
    if len == u32::MAX {
        return Some(None);
    }
    let bytes = buf.get(..len as usize)?;
    let s = std::str::from_utf8(bytes).ok()?.to_string();
    buf.advance(len as usize);
    Some(Some(s))
}

fn take_uuid(buf: &mut &[u8]) -> Option<Uuid> {
    let bytes: [u8; 16] = buf.get(..16)?.try_into().ok()?;
    buf.advance(16);
    Some(Uuid::from_bytes(bytes))
}

fn take_assignment(buf: &mut &[u8]) -> Option<Assignment> {
    let mut out = Assignment::new();
    for _ in 0..take_count(buf)? {
        let topic = take_uuid(buf)?;
        let mut partitions = BTreeSet::new();
        for _ in 0..take_count(buf)? {
            partitions.insert(take_i32(buf)?);
        }
        out.insert(topic, partitions);
    }
    Some(out)
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

pub fn encode_group_value(group: &StoredGroupValue) -> Bytes {
    match group {
        StoredGroupValue::Classic(g) => encode_classic_group_value(g),
        StoredGroupValue::Consumer(g) => encode_consumer_group_value(g),
    }
}

fn encode_classic_group_value(group: &StoredGroup) -> Bytes {
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

/// A stored group value: a classic group (layout version 0) or a
/// consumer group of the KIP-848 protocol (layout version 1, or 2 with classic members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredGroupValue {
    Classic(StoredGroup),
    Consumer(StoredConsumerGroup),
}

pub fn decode_group_value(buf: &[u8]) -> Option<StoredGroupValue> {
    match *buf.first()? {
        VERSION => decode_classic_group(&buf[1..]).map(StoredGroupValue::Classic),
        CONSUMER_GROUP_LAYOUT => {
            decode_consumer_group(&buf[1..], false).map(StoredGroupValue::Consumer)
        }
        CONSUMER_GROUP_LAYOUT_WITH_CLASSIC => {
            decode_consumer_group(&buf[1..], true).map(StoredGroupValue::Consumer)
        }
        _ => None,
    }
}

fn decode_classic_group(mut buf: &[u8]) -> Option<StoredGroup> {
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

/// A string with a u16 length. Group ids are refused beyond
/// `MAX_GROUP_ID_BYTES`, so keys always fit; any other string that does
/// not is cut at a character boundary rather than stored with a wrong
/// length.
fn put_short_string(out: &mut BytesMut, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

/// The longest group id accepted: what a non-flexible Kafka string holds.
pub const MAX_GROUP_ID_BYTES: usize = i16::MAX as usize;

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
        let group = StoredGroupValue::Classic(group);
        assert_eq!(decode_group_value(&encode_group_value(&group)), Some(group));
        assert_eq!(
            decode_any_key(&encode_group_key("g")),
            Some(Key::Group("g".into()))
        );
        let empty = StoredGroupValue::Classic(StoredGroup {
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            generation: 1,
            members: vec![],
        });
        let mut lying = encode_group_value(&empty).to_vec();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            decode_group_value(&lying),
            None,
            "a member count with no members"
        );
    }

    #[test]
    fn consumer_groups_round_trip_and_damage_is_refused() {
        let topic = Uuid::from_bytes([7; 16]);
        let group = StoredGroupValue::Consumer(StoredConsumerGroup {
            epoch: 5,
            assignment_epoch: 5,
            subscribed: SubscribedTopics::from([("orders".to_string(), (topic, 6))]),
            members: vec![StoredConsumerMember {
                member_id: "m".into(),
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                subscribed_names: vec!["orders".into()],
                subscribed_regex: Some("ord.*".into()),
                server_assignor: None,
                epoch: 5,
                previous_epoch: 4,
                state: 1,
                assigned: Assignment::from([(topic, BTreeSet::from([0, 1]))]),
                pending_revocation: Assignment::from([(topic, BTreeSet::from([2]))]),
                target: Assignment::from([(topic, BTreeSet::from([0, 1]))]),
                classic: Some(StoredClassicMember {
                    session_timeout_ms: 45_000,
                    protocols: vec![("range".into(), Bytes::from_static(b"\0\x03xyz"))],
                }),
            }],
        });
        let bytes = encode_group_value(&group);
        assert_eq!(decode_group_value(&bytes), Some(group));
        for cut in 0..bytes.len() {
            assert_eq!(decode_group_value(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn consumer_groups_stored_before_classic_members_still_load() {
        let topic = Uuid::from_bytes([3; 16]);
        let group = StoredConsumerGroup {
            epoch: 2,
            assignment_epoch: 2,
            subscribed: SubscribedTopics::from([("t".to_string(), (topic, 1))]),
            members: vec![StoredConsumerMember {
                member_id: "m".into(),
                instance_id: None,
                rack_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 1000,
                subscribed_names: vec!["t".into()],
                subscribed_regex: None,
                server_assignor: None,
                epoch: 2,
                previous_epoch: 1,
                state: 0,
                assigned: Assignment::from([(topic, BTreeSet::from([0]))]),
                pending_revocation: Assignment::new(),
                target: Assignment::from([(topic, BTreeSet::from([0]))]),
                classic: None,
            }],
        };
        // Layout 1 is layout 2 without the classic flag after each member.
        let mut old = encode_consumer_group_value(&group).to_vec();
        assert_eq!(old.pop(), Some(0));
        old[0] = CONSUMER_GROUP_LAYOUT;
        assert_eq!(
            decode_group_value(&old),
            Some(StoredGroupValue::Consumer(group))
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
