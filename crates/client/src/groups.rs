//! Consumer group administration, as `kafka-consumer-groups` does it:
//! find a group's coordinator, list and describe groups, read and set
//! committed offsets, delete groups. Works against any Kafka broker.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{check, topic_name, Client};
use crate::connection::Connection;

const FIND_COORDINATOR_MAX: i16 = 3;
const LIST_GROUPS_MAX: i16 = 5;
const DESCRIBE_GROUPS_MAX: i16 = 5;
const OFFSET_FETCH_MAX: i16 = 7;
const OFFSET_COMMIT_MAX: i16 = 8;
const DELETE_GROUPS_MAX: i16 = 2;
const CONSUMER_GROUP_DESCRIBE_MAX: i16 = 0;
/// ConsumerGroupDescribe's answer for a group that is not a consumer group.
const GROUP_ID_NOT_FOUND: i16 = 69;

#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// "classic" or "consumer" (the KIP-848 protocol); "classic" from
    /// brokers older than ListGroups v5.
    pub group_type: String,
}

#[derive(Debug, Clone)]
pub struct GroupMemberInfo {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Partitions assigned to the member (consumer protocol groups).
    pub assigned: Vec<(String, i32)>,
}

#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMemberInfo>,
}

impl Client {
    /// A connection to `group`'s coordinator.
    async fn coordinator(&mut self, group: &str) -> Result<&mut Connection> {
        let address = self.coordinator_address(group).await?;
        self.connection(&address).await
    }

    /// Sends a request of Sluice's admin API, on a connection of its own,
    /// to `group`'s coordinator (or the bootstrap broker). None when the
    /// broker is not Sluice (a Kafka broker closes the connection on an API
    /// key it does not know).
    pub async fn sluice_admin(
        &mut self,
        group: Option<&str>,
        api_key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<Option<bytes::Bytes>> {
        let address = match group {
            Some(group) => self.coordinator_address(group).await?,
            None => self.bootstrap.clone(),
        };
        let mut connection = Connection::connect(&address, "sluice-cli").await?;
        Ok(connection.exchange_raw(api_key, version, body).await.ok())
    }

    async fn coordinator_address(&mut self, group: &str) -> Result<String> {
        let mut request = FindCoordinatorRequest::default();
        request.key = StrBytes::from_string(group.to_string());
        let response = self
            .any_broker()
            .await?
            .send(&request, FIND_COORDINATOR_MAX)
            .await?;
        check(
            response.error_code,
            &format!("finding the coordinator of group '{group}'"),
        )?;
        Ok(format!("{}:{}", response.host.as_str(), response.port))
    }

    /// Every group the brokers know.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupSummary>> {
        let response = self
            .any_broker()
            .await?
            .send(&ListGroupsRequest::default(), LIST_GROUPS_MAX)
            .await?;
        check(response.error_code, "listing groups")?;
        let mut groups: Vec<GroupSummary> = response
            .groups
            .into_iter()
            .map(|g| GroupSummary {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: Some(g.group_type.to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "classic".to_string()),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// A group's state and members: through ConsumerGroupDescribe for a
    /// consumer group of the KIP-848 protocol, where the broker offers it,
    /// else through DescribeGroups (as Kafka's admin client does).
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupInfo> {
        if let Some(info) = self.describe_consumer_group(group).await? {
            return Ok(info);
        }
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![GroupId(StrBytes::from_string(group.to_string()))];
        let response = self
            .coordinator(group)
            .await?
            .send(&request, DESCRIBE_GROUPS_MAX)
            .await?;
        let described = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("empty DescribeGroups response"))?;
        check(described.error_code, &format!("describing group '{group}'"))?;
        let consumer = described.protocol_type.as_str() == "consumer";
        Ok(GroupInfo {
            group_id: group.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members: described
                .members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assigned: if consumer {
                        decode_assignment(&m.member_assignment).unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }

    /// None when the broker lacks ConsumerGroupDescribe or the group is
    /// not a consumer group.
    async fn describe_consumer_group(&mut self, group: &str) -> Result<Option<GroupInfo>> {
        let connection = self.coordinator(group).await?;
        if connection
            .version_for::<ConsumerGroupDescribeRequest>(CONSUMER_GROUP_DESCRIBE_MAX)
            .is_err()
        {
            return Ok(None);
        }
        let mut request = ConsumerGroupDescribeRequest::default();
        request.group_ids = vec![GroupId(StrBytes::from_string(group.to_string()))];
        let response = connection
            .send(&request, CONSUMER_GROUP_DESCRIBE_MAX)
            .await?;
        let described = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("empty ConsumerGroupDescribe response"))?;
        if described.error_code == GROUP_ID_NOT_FOUND {
            return Ok(None);
        }
        check(described.error_code, &format!("describing group '{group}'"))?;
        Ok(Some(GroupInfo {
            group_id: group.to_string(),
            state: described.group_state.to_string(),
            protocol_type: "consumer".to_string(),
            protocol: described.assignor_name.to_string(),
            members: described
                .members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id.to_string(),
                    instance_id: m.instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assigned: m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.topic_name.0.to_string(), *p))
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    /// The group's committed offset of every partition it has one for.
    pub async fn committed_offsets(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let mut request = OffsetFetchRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.topics = None;
        let response = self
            .coordinator(group)
            .await?
            .send(&request, OFFSET_FETCH_MAX)
            .await?;
        check(response.error_code, &format!("offsets of group '{group}'"))?;
        let mut out = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                check(
                    p.error_code,
                    &format!(
                        "offset of '{}' partition {}",
                        topic.name.0.as_str(),
                        p.partition_index
                    ),
                )?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (topic.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Sets committed offsets as a simple (generation -1) commit, which a
    /// broker accepts only while the group has no members.
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<()> {
        let request = offset_commit_request(group, -1, "", offsets);
        let connection = self.coordinator(group).await?;
        send_commit(connection, &request, group).await
    }

    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = vec![GroupId(StrBytes::from_string(group.to_string()))];
        let response = self
            .coordinator(group)
            .await?
            .send(&request, DELETE_GROUPS_MAX)
            .await?;
        match response.results.first() {
            Some(result) => check(result.error_code, &format!("deleting group '{group}'")),
            None => bail!("empty DeleteGroups response"),
        }
    }
}

/// An OffsetCommit of `offsets` (topic, partition, offset) for a member
/// of `generation` (-1 with no member: a simple commit).
pub(crate) fn offset_commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(String, i32, i64)],
) -> OffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = -1;
        by_topic.entry(topic).or_default().push(p);
    }
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    request.generation_id_or_member_epoch = generation;
    request.member_id = StrBytes::from_string(member_id.to_string());
    request.topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = topic_name(topic);
            t.partitions = partitions;
            t
        })
        .collect();
    request
}

/// Sends an OffsetCommit and fails on the first partition's error.
pub(crate) async fn send_commit(
    connection: &mut Connection,
    request: &OffsetCommitRequest,
    group: &str,
) -> Result<()> {
    let response = connection.send(request, OFFSET_COMMIT_MAX).await?;
    for topic in response.topics {
        for p in topic.partitions {
            check(
                p.error_code,
                &format!(
                    "committing '{}' partition {} for group '{group}'",
                    topic.name.0.as_str(),
                    p.partition_index
                ),
            )?;
        }
    }
    Ok(())
}

/// The partitions of a consumer protocol assignment (version i16, then an
/// array of topic name and partition array, then user data), read with no
/// trust in its counts; None if the bytes are not one.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    let mut rest = bytes.get(2..)?;
    let topics = take_i32(&mut rest)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(take_i16(&mut rest)?).ok()?;
        let name = std::str::from_utf8(rest.get(..len)?).ok()?.to_string();
        rest = &rest[len..];
        let count = take_i32(&mut rest)?;
        for _ in 0..count.max(0) {
            out.push((name.clone(), take_i32(&mut rest)?));
        }
    }
    Some(out)
}

fn take_i16(rest: &mut &[u8]) -> Option<i16> {
    let value = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    *rest = &rest[2..];
    Some(value)
}

fn take_i32(rest: &mut &[u8]) -> Option<i32> {
    let value = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    *rest = &rest[4..];
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_decode_without_trusting_counts() {
        let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 3];
        bytes.extend_from_slice(b"ord");
        bytes.extend_from_slice(&2i32.to_be_bytes());
        bytes.extend_from_slice(&4i32.to_be_bytes());
        bytes.extend_from_slice(&5i32.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![("ord".to_string(), 4), ("ord".to_string(), 5)])
        );
        assert_eq!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
    }
}
