//! DescribeProducers: the idempotent producers each partition knows, for
//! `kafka-transactions --describe-producers` and similar tools: id, epoch,
//! last sequence, when it last wrote (the broker's clock) and where its
//! open transaction in the partition starts, if it has one.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::Broker;
use crate::error::BrokerError;

pub fn handle(broker: &Broker, body: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for topic in body.topics {
        let mut topic_response = TopicResponse::default();
        topic_response.name = topic.name.clone();
        for index in topic.partition_indexes {
            let mut partition_response = PartitionResponse::default();
            partition_response.partition_index = index;
            match broker.partition(&topic.name.0, index) {
                Some(partition) => {
                    let log = partition.log();
                    let mut producers: Vec<ProducerState> = log
                        .producers()
                        .iter()
                        .map(|(id, entry)| {
                            let mut state = ProducerState::default();
                            state.producer_id = ProducerId(id);
                            state.producer_epoch = i32::from(entry.epoch);
                            state.last_sequence = entry.batches.back().map_or(-1, |b| b.last_seq);
                            state.last_timestamp = entry.last_timestamp;
                            state.coordinator_epoch = -1;
                            state.current_txn_start_offset = entry.txn_first_offset.unwrap_or(-1);
                            state
                        })
                        .collect();
                    producers.sort_by_key(|p| p.producer_id.0);
                    partition_response.active_producers = producers;
                }
                None => {
                    let e = BrokerError::UnknownTopicOrPartition;
                    partition_response.error_code = e.code();
                    partition_response.error_message = e.message();
                }
            }
            topic_response.partitions.push(partition_response);
        }
        response.topics.push(topic_response);
    }
    response
}
