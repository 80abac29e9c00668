//! Produce: validate each partition's record batch, append it, make it
//! durable per the fsync policy, and answer with its base offset. With
//! acks=0 nothing is answered; as in Kafka, a failed acks=0 produce closes
//! the connection, the only way the client can learn of it.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_storage::{AppendInfo, BatchHeader};
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::error::{BrokerError, Result};
use crate::partition::PartitionRef;
use crate::server::RequestContext;

/// Produce v13 names topics by id (KIP-516) instead of by name.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

/// Produce v12 comes from a Transactions V2 producer (KIP-890), which does
/// not send AddPartitionsToTxn: its first write adds the partition.
const FIRST_VERSION_OF_TRANSACTIONS_V2: i16 = 12;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: ProduceRequest,
) -> Result<Option<ProduceResponse>, String> {
    append_request(broker, request, body)
        .await
        .finish(broker)
        .await
}

/// A produce request whose batches are appended and which waits for them
/// to become durable (per the fsync policy) before it is answered. The
/// connection reads its next request meanwhile (see `server`), so that a
/// producer with several requests in flight is not served one sync at a
/// time; the appends themselves happen in request order.
pub struct PendingProduce {
    acks: i16,
    response: ProduceResponse,
    appended: Vec<(i32, Result<(PartitionRef, AppendInfo)>)>,
}

/// Validates and appends every partition's batch, in the request's order.
pub async fn append_request(
    broker: &Broker,
    request: &RequestContext,
    body: ProduceRequest,
) -> PendingProduce {
    let acks = body.acks;
    let now = now_ms();
    let mut response = ProduceResponse::default();
    // Transactional writes are checked against their transaction first,
    // and appended while its gate is held (see `txn`).
    let (_gate, mut verified) = verify_transactional(broker, request.version, &body).await;
    // First append every partition, then wait for durability of all of them
    // together, so one request to many partitions costs one round of fsyncs.
    let mut pending = Vec::new();
    for (topic_index, topic) in body.topic_data.into_iter().enumerate() {
        let resolved = resolve_topic(broker, request.version, &topic.name.0, topic.topic_id);
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        topic_response.topic_id = topic.topic_id;
        for data in topic.partition_data {
            let verdict = verified.remove(&(topic_index, data.index));
            let outcome = if !matches!(acks, -1..=1) {
                Err(BrokerError::InvalidRequiredAcks(acks))
            } else if let Some(Err(e)) = verdict {
                Err(e)
            } else {
                resolved.clone().and_then(|name| {
                    append(
                        broker,
                        &name,
                        data.index,
                        data.records,
                        now,
                        verdict.is_some(),
                    )
                })
            };
            if let Err(e) = &outcome {
                warn!(
                    peer = %request.peer,
                    topic = %topic.name.0,
                    partition = data.index,
                    error = %e,
                    "produce rejected"
                );
            }
            pending.push((data.index, outcome));
            topic_response
                .partition_responses
                .push(PartitionProduceResponse::default());
        }
        response.responses.push(topic_response);
    }

    // Every append is done: a marker may follow them now.
    drop(_gate);
    PendingProduce {
        acks,
        response,
        appended: pending,
    }
}

impl PendingProduce {
    /// Waits until every appended batch is durable and visible, then
    /// answers: all partitions together, so one request to many
    /// partitions costs one round of syncs. None for acks=0; an error
    /// (closing the connection) for a failed acks=0 produce.
    pub async fn finish(self, broker: &Broker) -> Result<Option<ProduceResponse>, String> {
        let PendingProduce {
            acks,
            mut response,
            appended: pending,
        } = self;
        let appended: Vec<(&PartitionRef, i64)> = pending
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref().ok())
            .map(|(partition, info)| (partition, info.last_offset + 1))
            .collect();
        let mut commits = broker.commit_appends(&appended).await.into_iter();
        let committed: Vec<Result<()>> = pending
            .iter()
            .map(|(_, outcome)| match outcome {
                Ok(_) => commits.next().unwrap_or(Ok(())),
                Err(_) => Ok(()),
            })
            .collect();

        let mut slots = response
            .responses
            .iter_mut()
            .flat_map(|t| t.partition_responses.iter_mut());
        for ((index, outcome), commit) in pending.into_iter().zip(committed) {
            let Some(slot) = slots.next() else { break };
            slot.index = index;
            slot.log_append_time_ms = -1;
            slot.error_message = None;
            let result = outcome.and_then(|(partition, info)| commit.map(|()| (partition, info)));
            match result {
                Ok((partition, info)) => {
                    slot.base_offset = info.base_offset;
                    slot.log_start_offset = partition.log_start_offset();
                    if partition.settings().log_append_time {
                        slot.log_append_time_ms = info.max_timestamp;
                    }
                }
                Err(e) => {
                    slot.error_code = e.code();
                    slot.error_message = e.message();
                    slot.base_offset = -1;
                    slot.log_start_offset = -1;
                }
            }
        }
        if acks != 0 {
            return Ok(Some(response));
        }
        let failed = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.error_code != 0);
        match failed {
            Some(p) => Err(format!(
                "acks=0 produce failed with error {}; closing so that the client notices",
                p.error_code
            )),
            None => Ok(None),
        }
    }
}

/// The topic's name, from its id on versions that send ids. A missing topic
/// named by the producer is auto-created if the broker allows it.
fn resolve_topic(broker: &Broker, version: i16, name: &str, id: uuid::Uuid) -> Result<String> {
    let by_id;
    let name = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
        by_id = broker
            .state()
            .topic_by_id(id)
            .map(|t| t.name.clone())
            .ok_or(BrokerError::UnknownTopicId)?;
        &by_id
    } else {
        name
    };
    if crate::group::is_internal_topic(name) {
        return Err(BrokerError::InvalidTopic(format!(
            "'{name}' is internal; only the broker writes to it"
        )));
    }
    if broker.state().topic(name).is_some() {
        return Ok(name.to_string());
    }
    crate::broker::validate_topic_name(name)?;
    broker.auto_create_topic(name).map(|t| t.name)
}

/// The transactional batches of a request, checked with the transaction
/// coordinator: by (topic's position in the request, partition), whether
/// each may be appended; and the gate to hold until they are.
async fn verify_transactional(
    broker: &Broker,
    version: i16,
    body: &ProduceRequest,
) -> (
    Option<crate::txn::WriteGate>,
    HashMap<(usize, i32), Result<()>>,
) {
    let mut writes = Vec::new();
    for (topic_index, topic) in body.topic_data.iter().enumerate() {
        for data in &topic.partition_data {
            let header = data
                .records
                .as_deref()
                .and_then(|r| BatchHeader::parse(r).ok());
            if let Some(header) = header.filter(BatchHeader::is_transactional) {
                // Topic ids are resolved only for transactional batches (a
                // plain produce resolves them once, when appending).
                let by_id = (version >= FIRST_VERSION_WITH_TOPIC_IDS)
                    .then(|| {
                        broker
                            .state()
                            .topic_by_id(topic.topic_id)
                            .map(|t| t.name.clone())
                    })
                    .flatten();
                let name = by_id.unwrap_or_else(|| topic.name.0.to_string());
                writes.push((topic_index, name, data.index, header));
            }
        }
    }
    let mut verdicts = HashMap::new();
    let Some((producer_id, epoch)) = writes
        .first()
        .map(|(_, _, _, h)| (h.producer_id, h.producer_epoch))
    else {
        return (None, verdicts);
    };
    let Some(transactional_id) = body.transactional_id.as_ref() else {
        for (topic_index, _, index, _) in writes {
            let e = BrokerError::InvalidTxnState(
                "a transactional batch in a produce request without a transactional id".into(),
            );
            verdicts.insert((topic_index, index), Err(e));
        }
        return (None, verdicts);
    };
    // A partition that does not exist is not added to the transaction; its
    // append fails on its own.
    writes.retain(|(_, name, index, _)| broker.partition(name, *index).is_some());
    let partitions: Vec<(String, i32)> = writes
        .iter()
        .map(|(_, name, index, _)| (name.clone(), *index))
        .collect();
    // Transactions V2 producers (Produce v12+) add partitions by writing.
    let implicit_add =
        version >= FIRST_VERSION_OF_TRANSACTIONS_V2 && broker.config.transaction_version >= 2;
    let (gate, results) = broker
        .txns
        .verify_writes(
            broker,
            transactional_id,
            (producer_id, epoch),
            &partitions,
            implicit_add,
        )
        .await;
    for ((topic_index, _, index, header), result) in writes.into_iter().zip(results) {
        let result = result.and_then(|()| {
            if (header.producer_id, header.producer_epoch) == (producer_id, epoch) {
                Ok(())
            } else {
                Err(BrokerError::InvalidProducerEpoch(
                    "transactional batches of one request must share a producer id and epoch"
                        .into(),
                ))
            }
        });
        verdicts.insert((topic_index, index), result);
    }
    (Some(gate), verdicts)
}

/// Checks that `records` hold exactly one batch (Kafka requires this from
/// produce v3 on) and appends it. A transactional batch must have been
/// verified with its transaction (`verified`).
fn append(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    now: i64,
    verified: bool,
) -> Result<(PartitionRef, AppendInfo)> {
    let partition = broker
        .partition(topic, index)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    let records = records.unwrap_or_default();
    if records.is_empty() {
        return Err(BrokerError::InvalidRecord(
            "produce request has no record batch for the partition".to_string(),
        ));
    }
    let header = BatchHeader::parse(&records)
        .map_err(|e| BrokerError::from(sluice_storage::StorageError::InvalidBatch(e)))?;
    if header.total_size() < records.len() {
        return Err(BrokerError::InvalidRecord(
            "produce requests must carry exactly one record batch per partition".to_string(),
        ));
    }
    if header.is_control() {
        return Err(BrokerError::InvalidRecord(
            "clients may not produce control batches".to_string(),
        ));
    }
    if header.is_transactional() && !verified {
        // A transactional write the coordinator did not check could open a
        // transaction no marker ever ends.
        return Err(BrokerError::InvalidTxnState(
            "a transactional batch that was not checked with its transaction".to_string(),
        ));
    }
    let info = partition.append(records, now)?;
    if info.duplicate {
        info!(
            topic,
            partition = index,
            producer_id = header.producer_id,
            sequence = header.base_sequence,
            base_offset = info.base_offset,
            "a producer's retry of a stored batch; answered with its offsets, not stored again"
        );
    }
    Ok((partition, info))
}
