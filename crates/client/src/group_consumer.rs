//! A subscribing consumer for the command-line tools: joins a group with
//! the classic protocol and the range assignor, heartbeats from its own
//! task, fetches its partitions from the committed offsets, commits what it
//! has handed out, and rejoins when the group rebalances. Works against any
//! Kafka broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::{check, Client, ConsumedRecord, EARLIEST, LATEST};
use crate::connection::Connection;
use crate::groups::{decode_assignment, offset_commit_request, send_commit};

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 60_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const JOIN_GROUP_VERSION: i16 = 7;

/// Who this member is in which generation, shared with the heartbeat task.
#[derive(Debug, Clone, Default)]
struct Membership {
    member_id: String,
    generation: i32,
}

pub struct GroupConsumer {
    client: Client,
    coordinator: Connection,
    coordinator_address: String,
    group: String,
    topics: Vec<String>,
    from_beginning: bool,
    membership: Arc<Mutex<Membership>>,
    rebalance: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// Next offset to hand out per assigned partition.
    positions: BTreeMap<(String, i32), i64>,
    /// Positions not yet committed.
    dirty: bool,
}

impl GroupConsumer {
    /// Joins `group` subscribed to `topics`. Partitions with no committed
    /// offset start at the earliest offset if `from_beginning`, else at
    /// the end.
    pub async fn join(
        client: Client,
        group: &str,
        topics: Vec<String>,
        from_beginning: bool,
    ) -> Result<GroupConsumer> {
        let mut client = client;
        let coordinator_address = find_coordinator(&mut client, group).await?;
        let coordinator = Connection::connect(&coordinator_address, "sluice-cli").await?;
        let mut consumer = GroupConsumer {
            client,
            coordinator,
            coordinator_address,
            group: group.to_string(),
            topics,
            from_beginning,
            membership: Arc::new(Mutex::new(Membership::default())),
            rebalance: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
            positions: BTreeMap::new(),
            dirty: false,
        };
        consumer.rejoin().await?;
        Ok(consumer)
    }

    fn membership(&self) -> Membership {
        self.membership
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The partitions this member owns.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// Joins (again) and takes up the assignment the leader hands out.
    async fn rejoin(&mut self) -> Result<()> {
        loop {
            self.rebalance.store(false, Ordering::SeqCst);
            let mut request = JoinGroupRequest::default();
            request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
            request.session_timeout_ms = SESSION_TIMEOUT_MS;
            request.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
            request.member_id = StrBytes::from_string(self.membership().member_id);
            request.protocol_type = StrBytes::from_static_str("consumer");
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = StrBytes::from_static_str("range");
            protocol.metadata = encode_subscription(&self.topics);
            request.protocols = vec![protocol];
            let join = self.coordinator.send(&request, JOIN_GROUP_VERSION).await?;
            match join.error_code.err() {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    self.set_membership(join.member_id.to_string(), -1);
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.set_membership(String::new(), -1);
                    continue;
                }
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(e) => bail!("joining group '{}': {e:?}", self.group),
            }
            let member_id = join.member_id.to_string();
            self.set_membership(member_id.clone(), join.generation_id);
            let assignments = if join.leader == join.member_id {
                let members: Vec<(String, Vec<String>)> = join
                    .members
                    .iter()
                    .map(|m| {
                        (
                            m.member_id.to_string(),
                            decode_subscription(&m.metadata).unwrap_or_default(),
                        )
                    })
                    .collect();
                self.range_assign(&members).await?
            } else {
                Vec::new()
            };
            let mut sync = SyncGroupRequest::default();
            sync.group_id = GroupId(StrBytes::from_string(self.group.clone()));
            sync.generation_id = join.generation_id;
            sync.member_id = join.member_id.clone();
            sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
            sync.protocol_name = join.protocol_name.clone();
            sync.assignments = assignments
                .into_iter()
                .map(|(member, assignment)| {
                    let mut a = SyncGroupRequestAssignment::default();
                    a.member_id = StrBytes::from_string(member);
                    a.assignment = assignment;
                    a
                })
                .collect();
            let synced = self.coordinator.send(&sync, 5).await?;
            match synced.error_code.err() {
                None => {}
                Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                    continue
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.set_membership(String::new(), -1);
                    continue;
                }
                Some(e) => bail!("syncing group '{}': {e:?}", self.group),
            }
            let assigned = decode_assignment(&synced.assignment).unwrap_or_default();
            self.take_up(assigned).await?;
            self.start_heartbeat().await?;
            return Ok(());
        }
    }

    fn set_membership(&self, member_id: String, generation: i32) {
        if let Ok(mut m) = self.membership.lock() {
            *m = Membership {
                member_id,
                generation,
            };
        }
    }

    /// Kafka's range assignor: per topic, members subscribed to it in
    /// member id order each take a contiguous range of partitions.
    async fn range_assign(
        &mut self,
        members: &[(String, Vec<String>)],
    ) -> Result<Vec<(String, Bytes)>> {
        let mut topics: Vec<&String> = members.iter().flat_map(|(_, t)| t).collect();
        topics.sort();
        topics.dedup();
        let mut owned: BTreeMap<&str, Vec<(String, i32)>> = BTreeMap::new();
        for topic in topics {
            let partitions = match self.client.describe_topic(topic).await {
                Ok(info) => info.partitions.len() as i32,
                Err(_) => continue,
            };
            let mut subscribers: Vec<&str> = members
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(m, _)| m.as_str())
                .collect();
            subscribers.sort_unstable();
            let n = subscribers.len() as i32;
            let (per, extra) = (partitions / n, partitions % n);
            for (i, member) in (0..).zip(subscribers) {
                let start = i * per + i.min(extra);
                let count = per + i32::from(i < extra);
                let mine = owned.entry(member).or_default();
                mine.extend((start..start + count).map(|p| (topic.clone(), p)));
            }
        }
        Ok(members
            .iter()
            .map(|(m, _)| {
                let mine = owned.get(m.as_str()).cloned().unwrap_or_default();
                (m.clone(), encode_assignment(&mine))
            })
            .collect())
    }

    /// Starts from the committed offsets of the assigned partitions.
    async fn take_up(&mut self, assigned: Vec<(String, i32)>) -> Result<()> {
        let committed = self.client.committed_offsets(&self.group).await?;
        self.positions.clear();
        for (topic, partition) in assigned {
            let start = match committed.get(&(topic.clone(), partition)) {
                Some(&offset) => offset,
                None => {
                    let reset = if self.from_beginning {
                        EARLIEST
                    } else {
                        LATEST
                    };
                    self.client.list_offset(&topic, partition, reset).await?
                }
            };
            self.positions.insert((topic, partition), start);
        }
        self.dirty = false;
        Ok(())
    }

    async fn start_heartbeat(&mut self) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let mut connection = Connection::connect(&self.coordinator_address, "sluice-cli").await?;
        let membership = Arc::clone(&self.membership);
        let rebalance = Arc::clone(&self.rebalance);
        let group = self.group.clone();
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                let m = membership.lock().map(|m| m.clone()).unwrap_or_default();
                let mut request = HeartbeatRequest::default();
                request.group_id = GroupId(StrBytes::from_string(group.clone()));
                request.generation_id = m.generation;
                request.member_id = StrBytes::from_string(m.member_id);
                match connection.send(&request, 4).await {
                    Ok(response) if response.error_code == 0 => {}
                    _ => {
                        rebalance.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
        Ok(())
    }

    /// The next records of the assigned partitions, waiting up to
    /// `max_wait_ms` per partition. Rejoins first if the group rebalanced.
    /// A record counts as handled (and is committed) only once the caller
    /// passes it to [`GroupConsumer::consumed`]; until then the next poll
    /// returns it again.
    pub async fn poll(&mut self, max_wait_ms: i32) -> Result<Vec<(String, ConsumedRecord)>> {
        if self.rebalance.load(Ordering::SeqCst) {
            // Commit what was handed out before the partitions move.
            let _ = self.commit().await;
            self.rejoin().await?;
        }
        let mut out = Vec::new();
        let wait = if self.positions.len() <= 1 {
            max_wait_ms
        } else {
            max_wait_ms.min(100)
        };
        let owned: Vec<((String, i32), i64)> = self
            .positions
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for ((topic, partition), position) in owned {
            let (records, _) = self.client.fetch(&topic, partition, position, wait).await?;
            out.extend(records.into_iter().map(|r| (topic.clone(), r)));
        }
        if self.positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(
                u64::try_from(max_wait_ms).unwrap_or(0),
            ))
            .await;
        }
        Ok(out)
    }

    /// Marks everything up to and including `offset` of a partition as
    /// handled: the next poll starts after it, and the next commit
    /// includes it.
    pub fn consumed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(position) = self.positions.get_mut(&(topic.to_string(), partition)) {
            *position = offset + 1;
            self.dirty = true;
        }
    }

    /// Commits the positions of the assigned partitions.
    pub async fn commit(&mut self) -> Result<()> {
        if !self.dirty || self.positions.is_empty() {
            return Ok(());
        }
        let m = self.membership();
        let offsets: Vec<(String, i32, i64)> = self
            .positions
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, *offset))
            .collect();
        let request = offset_commit_request(&self.group, m.generation, &m.member_id, &offsets);
        send_commit(&mut self.coordinator, &request, &self.group).await?;
        self.dirty = false;
        Ok(())
    }

    /// Commits and leaves the group, so that the others take over at once.
    pub async fn close(mut self) -> Result<()> {
        let committed = self.commit().await;
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let m = self.membership();
        let mut request = LeaveGroupRequest::default();
        request.group_id = GroupId(StrBytes::from_string(self.group.clone()));
        // v3 moved the member into a batch.
        let version = self.coordinator.version_for::<LeaveGroupRequest>(5)?;
        if version >= 3 {
            let mut member = MemberIdentity::default();
            member.member_id = StrBytes::from_string(m.member_id);
            request.members = vec![member];
        } else {
            request.member_id = StrBytes::from_string(m.member_id);
        }
        let left = self.coordinator.send(&request, 5).await;
        committed?;
        let response = left?;
        check(
            response.error_code,
            &format!("leaving group '{}'", self.group),
        )
    }
}

async fn find_coordinator(client: &mut Client, group: &str) -> Result<String> {
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_string());
    for _ in 0..50 {
        let response = client.any_broker().await?.send(&request, 3).await?;
        match response.error_code.err() {
            None => return Ok(format!("{}:{}", response.host.as_str(), response.port)),
            Some(e) if e.is_retriable() => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(e) => bail!("finding the coordinator of group '{group}': {e:?}"),
        }
    }
    bail!("no coordinator for group '{group}'")
}

/// A consumer protocol subscription, version 0: topics, no user data.
fn encode_subscription(topics: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(topics.len() as i32);
    for topic in topics {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
    }
    out.put_i32(-1);
    out.freeze()
}

/// The topics of a subscription, read with no trust in its counts.
fn decode_subscription(bytes: &[u8]) -> Option<Vec<String>> {
    let mut rest = bytes.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = usize::try_from(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?)).ok()?;
        topics.push(std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string());
        rest = &rest[2 + len..];
    }
    Some(topics)
}

/// A consumer protocol assignment, version 0.
fn encode_assignment(partitions: &[(String, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(*p);
    }
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(by_topic.len() as i32);
    for (topic, ps) in by_topic {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(p);
        }
    }
    out.put_i32(-1);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let topics = vec!["a".to_string(), "bb".to_string()];
        assert_eq!(
            decode_subscription(&encode_subscription(&topics)),
            Some(topics)
        );
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("bb".to_string(), 1),
        ];
        assert_eq!(decode_assignment(&encode_assignment(&parts)), Some(parts));
    }
}
