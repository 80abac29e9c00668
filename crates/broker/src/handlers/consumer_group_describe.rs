//! ConsumerGroupDescribe (KIP-848): each consumer group's state, epochs,
//! assignor and members, with each member's current and target
//! assignment. A group that is not a consumer group is GROUP_ID_NOT_FOUND,
//! as in Kafka (its admin client then falls back to DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::assignor;
use crate::metadata::ClusterState;

/// What Kafka sends when authorized operations were not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// ConsumerGroupDescribe v1's member type of a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(
    broker: &Broker,
    body: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = broker.state();
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in body.group_ids {
        let mut group = DescribedGroup::default();
        group.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        match broker.groups.describe_consumer_group(&group_id.0) {
            Some(view) => {
                group.group_state = StrBytes::from_static_str(view.state);
                group.group_epoch = view.group_epoch;
                group.assignment_epoch = view.assignment_epoch;
                group.assignor_name = StrBytes::from_static_str(view.assignor);
                group.members = view
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = Member::default();
                        member.member_id = StrBytes::from_string(m.member_id);
                        member.instance_id = m.instance_id.map(StrBytes::from_string);
                        member.rack_id = m.rack_id.map(StrBytes::from_string);
                        member.member_epoch = m.member_epoch;
                        member.client_id = StrBytes::from_string(m.client_id);
                        member.client_host = StrBytes::from_string(m.client_host);
                        member.subscribed_topic_names = m
                            .subscribed_names
                            .into_iter()
                            .map(|n| TopicName(StrBytes::from_string(n)))
                            .collect();
                        member.subscribed_topic_regex =
                            m.subscribed_regex.map(StrBytes::from_string);
                        member.assignment = wire_assignment(&m.assignment, &topics);
                        member.target_assignment = wire_assignment(&m.target, &topics);
                        // v1 (KIP-1099): 0 classic protocol, 1 consumer protocol.
                        member.member_type = if m.classic { 0 } else { 1 };
                        member.member_type = MEMBER_TYPE_CONSUMER;
                        member
                    })
                    .collect();
            }
            None => {
                let e = BrokerError::GroupIdNotFound;
                group.error_code = e.code();
                group.error_message = Some(StrBytes::from_string(format!(
                    "group {} is not a consumer group",
                    group_id.0
                )));
                group.group_state = StrBytes::from_static_str("Dead");
            }
        }
        group.group_id = group_id;
        response.groups.push(group);
    }
    response
}

fn wire_assignment(assignment: &assignor::Assignment, topics: &ClusterState) -> Assignment {
    let mut out = Assignment::default();
    out.topic_partitions = assignment
        .iter()
        .map(|(id, partitions)| {
            let mut t = TopicPartitions::default();
            t.topic_id = *id;
            t.topic_name = TopicName(StrBytes::from_string(
                topics
                    .topic_by_id(*id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            ));
            t.partitions = partitions.iter().copied().collect();
            t
        })
        .collect();
    out
}
