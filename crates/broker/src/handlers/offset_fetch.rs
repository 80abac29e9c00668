//! OffsetFetch: a group's committed offsets, for one group (v1-v7) or a
//! batch of groups (v8+); partitions with none get offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::group::{CommittedOffset, FetchedOffsets as Found};
use crate::server::RequestContext;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if request.version >= 8 {
        for group in body.groups {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            let member = group.member_id.as_ref().map(|m| m.to_string());
            let fetched = broker
                .groups
                .check_fetcher(&group.group_id.0, member.as_deref(), group.member_epoch)
                .and_then(|()| broker.groups.fetch_offsets(&group.group_id.0, wanted));
            let group_id = group.group_id.0.to_string();
            let unstable = |topic: &str, partition: i32| {
                body.require_stable
                    && broker
                        .groups
                        .has_pending_offset(&group_id, topic, partition)
            };
            match fetched {
                Ok(found) => out.topics = topics_v8(found, unstable),
                Err(e) => out.error_code = e.code(),
            }
            out.group_id = group.group_id;
            response.groups.push(out);
        }
        return response;
    }
    let wanted = body.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match broker.groups.fetch_offsets(&body.group_id.0, wanted) {
        Ok(found) => {
            response.topics = found
                .into_iter()
                .map(|(topic, partitions)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partitions = partitions
                        .into_iter()
                        .map(|(index, committed)| {
                            let (offset, epoch, metadata) = fields(committed);
                            let mut p = OffsetFetchResponsePartition::default();
                            if body.require_stable
                                && broker
                                    .groups
                                    .has_pending_offset(&body.group_id.0, &topic, index)
                            {
                                p.error_code = ResponseError::UnstableOffsetCommit.code();
                            }
                            p.partition_index = index;
                            p.committed_offset = offset;
                            p.committed_leader_epoch = epoch;
                            p.metadata = metadata;
                            p
                        })
                        .collect();
                    t
                })
                .collect();
        }
        Err(e) => response.error_code = e.code(),
    }
    response
}

/// The v8+ topics; `unstable` tells a partition whose offset is in an
/// open transaction (UNSTABLE_OFFSET_COMMIT when the fetch asked for
/// stable offsets).
fn topics_v8(found: Found, unstable: impl Fn(&str, i32) -> bool) -> Vec<OffsetFetchResponseTopics> {
    found
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = OffsetFetchResponseTopics::default();
            t.name = TopicName(StrBytes::from_string(topic.clone()));
            t.partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    let mut p = OffsetFetchResponsePartitions::default();
                    if unstable(&topic, index) {
                        p.error_code = ResponseError::UnstableOffsetCommit.code();
                    }
                    p.partition_index = index;
                    p.committed_offset = offset;
                    p.committed_leader_epoch = epoch;
                    p.metadata = metadata;
                    p
                })
                .collect();
            t
        })
        .collect()
}

/// Offset, leader epoch and metadata as Kafka answers them: -1, -1 and an
/// empty string when nothing is committed.
fn fields(committed: Option<CommittedOffset>) -> (i64, i32, Option<StrBytes>) {
    match committed {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(StrBytes::from_string(c.metadata.unwrap_or_default())),
        ),
        None => (-1, -1, Some(StrBytes::default())),
    }
}
