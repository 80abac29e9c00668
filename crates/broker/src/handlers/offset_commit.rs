//! OffsetCommit: a group member (or a simple committer with generation
//! -1) stores consumed positions; the answer comes once they are durable.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use tracing::warn;

use crate::broker::{now_ms, Broker};
use crate::group::{CommittedOffset, Committer, OffsetToCommit};
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let committer = Committer {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|s| s.to_string()),
        generation: body.generation_id_or_member_epoch,
    };
    let now = now_ms();
    let with_epoch = request.version >= 6;
    let mut offsets = Vec::new();
    for topic in &body.topics {
        for p in &topic.partitions {
            offsets.push(OffsetToCommit {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                value: CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: if with_epoch {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now,
                },
            });
        }
    }
    let results = broker
        .groups
        .commit(broker, &body.group_id.0, &committer, offsets)
        .await;
    match &results {
        Err(e) => {
            warn!(peer = %request.peer, group = %body.group_id.0, error = %e, "offset commit rejected")
        }
        Ok(per_offset) => {
            if let Some(e) = per_offset.iter().find_map(|r| r.as_ref().err()) {
                warn!(peer = %request.peer, group = %body.group_id.0, error = %e, "offset commit partly rejected");
            }
        }
    }
    let mut codes = match &results {
        Ok(per_offset) => per_offset
            .iter()
            .map(|r| r.as_ref().err().map_or(0, |e| e.code()))
            .collect::<Vec<_>>()
            .into_iter(),
        Err(e) => vec![e.code(); body.topics.iter().map(|t| t.partitions.len()).sum()].into_iter(),
    };
    let mut response = OffsetCommitResponse::default();
    for topic in body.topics {
        let mut out = OffsetCommitResponseTopic::default();
        out.name = topic.name;
        for p in topic.partitions {
            let mut partition = OffsetCommitResponsePartition::default();
            partition.partition_index = p.partition_index;
            partition.error_code = codes.next().unwrap_or(0);
            out.partitions.push(partition);
        }
        response.topics.push(out);
    }
    response
}
