//! DescribeTopicPartitions (KIP-966): topics and their partitions, paged by
//! a partition limit and a cursor. The Java admin client uses it for
//! `describeTopics`.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::TOPIC_OPERATIONS;
use crate::broker::Broker;
use crate::error::BrokerError;

/// Kafka's max.request.partition.size.limit default.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    broker: &Broker,
    body: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let state = broker.state();
    let mut names: Vec<String> = if body.topics.is_empty() {
        state.topics.keys().cloned().collect()
    } else {
        body.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = body.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let mut budget = match body.response_partition_limit {
        n if n > 0 => n.min(MAX_PARTITIONS_PER_RESPONSE),
        _ => MAX_PARTITIONS_PER_RESPONSE,
    };

    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names.into_iter().filter(|n| *n >= cursor_topic) {
        let mut out = DescribeTopicPartitionsResponseTopic::default();
        out.name = Some(TopicName(StrBytes::from_string(name.clone())));
        let Some(topic) = state.topic(&name) else {
            out.error_code = BrokerError::UnknownTopicOrPartition.code();
            response.topics.push(out);
            continue;
        };
        out.topic_id = topic.id;
        out.topic_authorized_operations = TOPIC_OPERATIONS;
        let first = if name == cursor_topic {
            cursor_partition.max(0)
        } else {
            0
        };
        for (index, p) in topic.partitions.iter().enumerate().skip(first as usize) {
            if budget == 0 {
                let mut cursor = Cursor::default();
                cursor.topic_name = TopicName(StrBytes::from_string(name.clone()));
                cursor.partition_index = index as i32;
                response.next_cursor = Some(cursor);
                break;
            }
            budget -= 1;
            let mut partition = DescribeTopicPartitionsResponsePartition::default();
            partition.partition_index = index as i32;
            partition.leader_id = BrokerId(p.leader);
            partition.leader_epoch = p.leader_epoch;
            partition.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            partition.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            partition.eligible_leader_replicas = Some(Vec::new());
            partition.last_known_elr = Some(Vec::new());
            out.partitions.push(partition);
        }
        let stop = response.next_cursor.is_some();
        if !out.partitions.is_empty() || !stop {
            response.topics.push(out);
        }
        if stop {
            break;
        }
    }
    response
}
