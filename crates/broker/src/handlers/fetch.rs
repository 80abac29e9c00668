//! Fetch: whole record batches from each requested partition, up to the
//! per-partition and total byte limits (the first batch is returned even if
//! larger, KIP-74), waiting up to `max_wait_ms` for `min_bytes` to arrive.
//!
//! Fetch sessions (KIP-227, `fetch_sessions.rs`) decide which partitions
//! a request reads and which of them its response tells about.
//!
//! Records are not read here: each partition's answer names the region of
//! its segment file that holds them, and the server sends that region
//! straight from the page cache (see `fetch_wire`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use sluice_storage::FileRegion;
use tokio::sync::Notify;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::server::RequestContext;

/// Fetch v13 names topics by id (KIP-516).
pub const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
/// Kafka's isolation level for read_committed.
const READ_COMMITTED: i8 = 1;

/// The response, and for each of its partitions in order the file region
/// holding its records.
pub type FetchReply = (FetchResponse, Vec<Option<FileRegion>>);

pub async fn handle(broker: &Broker, request: &RequestContext, body: FetchRequest) -> FetchReply {
    let plan = match broker.fetch_sessions.plan(&body, request.version) {
        Ok(plan) => plan,
        Err(e) => {
            let mut response = FetchResponse::default();
            response.error_code = e.code();
            return (response, Vec::new());
        }
    };
    let mut reply = read_until_ready(broker, request.version, &body, &plan.topics).await;
    broker.fetch_sessions.finish(&plan, &mut reply);
    reply
}

/// Reads until `min_bytes` are there, a partition has an error, or
/// `max_wait_ms` has passed.
async fn read_until_ready(
    broker: &Broker,
    version: i16,
    body: &FetchRequest,
    topics: &[FetchTopic],
) -> FetchReply {
    let wait = Duration::from_millis(body.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + wait;
    // Registered with each partition read once the first pass found too
    // little: a fetch that is answered at once costs no registration.
    let mut waiter: Option<Arc<Notify>> = None;
    loop {
        let (reply, bytes, any_error) = read_once(broker, version, body, topics, waiter.as_ref());
        let now = Instant::now();
        if bytes >= body.min_bytes.max(0) as usize || any_error || now >= deadline {
            return reply;
        }
        match &waiter {
            // Registration comes before each partition is read, so data
            // published after that read wakes the wait below.
            None => waiter = Some(Arc::new(Notify::new())),
            Some(waiter) => {
                let _ = tokio::time::timeout(deadline - now, waiter.notified()).await;
            }
        }
    }
}

/// One pass over the requested partitions: the reply, how many record
/// bytes it holds, and whether any partition had an error.
fn read_once(
    broker: &Broker,
    version: i16,
    body: &FetchRequest,
    topics: &[FetchTopic],
    waiter: Option<&Arc<Notify>>,
) -> (FetchReply, usize, bool) {
    let mut response = FetchResponse::default();
    let mut regions = Vec::new();
    let mut total = 0usize;
    let mut any_error = false;
    let total_limit = body.max_bytes.max(0) as usize;
    for topic in topics {
        let name = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            broker
                .state()
                .topic_by_id(topic.topic_id)
                .map(|t| t.name.clone())
                .ok_or(BrokerError::UnknownTopicId)
        } else {
            Ok(topic.topic.0.to_string())
        };
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for fetch in &topic.partitions {
            let remaining = total_limit.saturating_sub(total);
            let limit = remaining.min(fetch.partition_max_bytes.max(0) as usize);
            let min_one = total == 0;
            let result = name.clone().and_then(|name| {
                let partition = broker
                    .partition(&name, fetch.partition)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?;
                if let Some(waiter) = waiter {
                    partition.watch_for_fetch(waiter);
                }
                read_partition(&partition, fetch, limit, min_one, body.isolation_level)
            });
            let data = match result {
                Ok((data, region)) => {
                    total += region.as_ref().map_or(0, FileRegion::len);
                    regions.push(region);
                    data
                }
                Err(e) => {
                    any_error = true;
                    regions.push(None);
                    error_partition(fetch.partition, &e)
                }
            };
            topic_response.partitions.push(data);
        }
        response.responses.push(topic_response);
    }
    ((response, regions), total, any_error)
}

fn read_partition(
    partition: &Partition,
    fetch: &kafka_protocol::messages::fetch_request::FetchPartition,
    max_bytes: usize,
    min_one: bool,
    isolation_level: i8,
) -> Result<(PartitionData, Option<FileRegion>)> {
    check_leader_epoch(fetch.current_leader_epoch, partition.leader_epoch())?;
    let high_watermark = partition.high_watermark();
    let last_stable = partition.last_stable_offset();
    let read_committed = isolation_level == READ_COMMITTED;
    // read_committed readers stop at the last stable offset: past it a
    // transaction is still undecided.
    let upper = if read_committed {
        last_stable
    } else {
        high_watermark
    };
    let records = if fetch.fetch_offset >= high_watermark {
        // At or past what consumers may see: nothing yet, unless the offset
        // is beyond the log altogether.
        let log_end = partition.log().log_end_offset();
        if fetch.fetch_offset > log_end {
            return Err(BrokerError::OffsetOutOfRange {
                requested: fetch.fetch_offset,
                log_start: partition.log_start_offset(),
                log_end,
            });
        }
        None
    } else if fetch.fetch_offset >= upper {
        None
    } else {
        partition.read_up_to(fetch.fetch_offset, max_bytes, upper, min_one)?
    };
    let mut data = PartitionData::default();
    data.partition_index = fetch.partition;
    data.high_watermark = high_watermark;
    data.last_stable_offset = last_stable;
    data.log_start_offset = partition.log_start_offset();
    // The aborted transactions among what is returned: the reader drops
    // their records itself.
    data.aborted_transactions = read_committed.then(|| {
        partition
            .aborted_between(fetch.fetch_offset, upper)
            .into_iter()
            .map(|t| {
                let mut aborted = AbortedTransaction::default();
                aborted.producer_id = ProducerId(t.producer_id);
                aborted.first_offset = t.first_offset;
                aborted
            })
            .collect()
    });
    data.preferred_read_replica = BrokerId(-1);
    // An empty record set when there is no region (the encoder sends the
    // region in its place when there is one).
    data.records = Some(Default::default());
    Ok((data, records))
}

/// A client that knows a newer epoch than ours talks to a stale leader; one
/// that knows an older one has stale metadata (KIP-320).
pub fn check_leader_epoch(client_epoch: i32, leader_epoch: i32) -> Result<()> {
    if client_epoch < 0 || client_epoch == leader_epoch {
        Ok(())
    } else if client_epoch < leader_epoch {
        Err(BrokerError::FencedLeaderEpoch)
    } else {
        Err(BrokerError::UnknownLeaderEpoch)
    }
}

fn error_partition(index: i32, error: &BrokerError) -> PartitionData {
    let mut data = PartitionData::default();
    data.partition_index = index;
    data.error_code = error.code();
    data.high_watermark = -1;
    data.last_stable_offset = -1;
    data.log_start_offset = -1;
    data.preferred_read_replica = BrokerId(-1);
    data.records = Some(Default::default());
    data
}
