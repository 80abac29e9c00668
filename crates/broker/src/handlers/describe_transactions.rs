//! DescribeTransactions: each named transactional id's producer, state,
//! timeout, when its open transaction started and the partitions in it
//! (TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub fn handle(broker: &Broker, body: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in body.transactional_ids {
        let mut described = TransactionState::default();
        match broker.txns.get(&id) {
            Some(meta) => {
                described.transaction_state = StrBytes::from_static_str(meta.state.name());
                described.transaction_timeout_ms = meta.timeout_ms;
                described.transaction_start_time_ms = meta.start_ms;
                described.producer_id = ProducerId(meta.producer_id);
                described.producer_epoch = meta.producer_epoch;
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &meta.partitions {
                    by_topic.entry(topic.clone()).or_default().push(*partition);
                }
                described.topics = by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut t = TopicData::default();
                        t.topic = TopicName(StrBytes::from_string(topic));
                        t.partitions = partitions;
                        t
                    })
                    .collect();
            }
            None => {
                described.error_code = ResponseError::TransactionalIdNotFound.code();
                described.producer_id = ProducerId(-1);
                described.producer_epoch = -1;
                described.transaction_start_time_ms = -1;
            }
        }
        described.transactional_id = id;
        response.transaction_states.push(described);
    }
    response
}
