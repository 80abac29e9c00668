//! ListOffsets: the earliest or latest offset of a partition, the offset of
//! its largest timestamp (KIP-734), or the first offset whose timestamp is
//! at least a given one.

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_storage::{records, BatchHeader};
use tracing::warn;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::handlers::fetch::check_leader_epoch;
use crate::partition::Partition;
use crate::server::RequestContext;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// Kafka's isolation level for read_committed.
const READ_COMMITTED: i8 = 1;

/// An offset and its timestamp; -1 for either when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    offset: i64,
    timestamp: i64,
}

const NOT_FOUND: Found = Found {
    offset: -1,
    timestamp: -1,
};

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in body.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for query in topic.partitions {
            let mut out = ListOffsetsPartitionResponse::default();
            out.partition_index = query.partition_index;
            out.leader_epoch = -1;
            let result = broker
                .partition(&topic.name.0, query.partition_index)
                .ok_or(BrokerError::UnknownTopicOrPartition)
                .and_then(|partition| {
                    check_leader_epoch(query.current_leader_epoch, partition.leader_epoch())?;
                    let found = lookup(&partition, &query, body.isolation_level)?;
                    Ok((partition.leader_epoch(), found))
                });
            match result {
                Ok((epoch, found)) => {
                    out.offset = found.offset;
                    out.timestamp = found.timestamp;
                    // Only v4+ carries the epoch; older versions must leave it unset.
                    if request.version >= 4 {
                        out.leader_epoch = epoch;
                    }
                }
                Err(e) => {
                    out.error_code = e.code();
                    out.offset = -1;
                    out.timestamp = -1;
                }
            }
            topic_response.partitions.push(out);
        }
        response.topics.push(topic_response);
    }
    response
}

fn lookup(
    partition: &Partition,
    query: &ListOffsetsPartition,
    isolation_level: i8,
) -> Result<Found> {
    let high_watermark = partition.high_watermark();
    let at = |offset| Found {
        offset,
        timestamp: -1,
    };
    match query.timestamp {
        // read_committed readers end at the last stable offset.
        LATEST if isolation_level == READ_COMMITTED => Ok(at(partition.last_stable_offset())),
        LATEST => Ok(at(high_watermark)),
        EARLIEST | EARLIEST_LOCAL => Ok(at(partition.log_start_offset())),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => Ok(NOT_FOUND),
        MAX_TIMESTAMP => match partition.log().max_timestamp() {
            Some(max) => first_at_or_after(partition, max, high_watermark),
            None => Ok(NOT_FOUND),
        },
        t if t < 0 => Err(BrokerError::InvalidRequest(format!(
            "unknown special timestamp {t}"
        ))),
        t => first_at_or_after(partition, t, high_watermark),
    }
}

/// The first record with a timestamp of at least `timestamp`: storage finds
/// its batch, and the batch's records are read to find the record.
fn first_at_or_after(partition: &Partition, timestamp: i64, high_watermark: i64) -> Result<Found> {
    let Some(batch) = partition
        .log()
        .find_by_timestamp(timestamp, high_watermark)?
    else {
        return Ok(NOT_FOUND);
    };
    let header = BatchHeader::parse(&batch).map_err(sluice_storage::StorageError::from)?;
    let whole_batch = Found {
        offset: header.base_offset,
        timestamp: header.max_timestamp,
    };
    if header.is_log_append_time() {
        return Ok(whole_batch);
    }
    let limit = partition.settings().max_uncompressed_batch_bytes;
    match records::first_at_or_after(&batch, timestamp, limit) {
        Ok(Some((offset, timestamp))) => Ok(Found { offset, timestamp }),
        Ok(None) => Ok(whole_batch),
        Err(e) => {
            // A batch stored by an older build without record checks: answer
            // at batch level rather than fail every lookup that reaches it.
            warn!(
                topic = %partition.topic,
                partition = partition.index,
                offset = header.base_offset,
                error = %e,
                "stored batch's records do not decode; answering with the batch's offset"
            );
            Ok(whole_batch)
        }
    }
}
