//! ConsumerGroupHeartbeat (KIP-848): a member of a consumer group joins,
//! stays, updates its subscription, reports the partitions it owns, or
//! leaves; the answer carries its epoch and, when it changed, the
//! partitions it may use now.

use std::collections::BTreeSet;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::broker::Broker;
use crate::group::assignor;
use crate::group::consumer::Heartbeat;
use crate::server::RequestContext;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let heartbeat = Heartbeat {
        member_id: body.member_id.to_string(),
        member_epoch: body.member_epoch,
        instance_id: body.instance_id.map(|s| s.to_string()),
        rack_id: body.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: body.rebalance_timeout_ms,
        subscribed_names: body
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_regex: body.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: body.server_assignor.map(|s| s.to_string()),
        owned: body.topic_partitions.map(|owned| {
            owned
                .into_iter()
                .map(|t| (t.topic_id, t.partitions))
                .collect()
        }),
        client_id: request.client_id(),
        client_host: request.client_host(),
    };
    let group = body.group_id.0.to_string();
    let topics = broker.state();
    let mut response = ConsumerGroupHeartbeatResponse::default();
    match broker
        .groups
        .consumer_heartbeat(&group, heartbeat, request.version, &topics)
    {
        Ok(reply) => {
            response.member_id = Some(StrBytes::from_string(reply.member_id));
            response.member_epoch = reply.member_epoch;
            response.heartbeat_interval_ms =
                reply.heartbeat_interval.as_millis().min(i32::MAX as u128) as i32;
            response.assignment = reply.assignment.map(|a| {
                let mut out = Assignment::default();
                out.topic_partitions = wire_partitions(&a);
                out
            });
        }
        Err(e) => {
            debug!(group, error = %e, "consumer group heartbeat refused");
            response.error_code = e.code();
            response.error_message = e.message();
        }
    }
    response
}

fn wire_partitions(assignment: &assignor::Assignment) -> Vec<TopicPartitions> {
    assignment
        .iter()
        .map(|(id, partitions): (_, &BTreeSet<i32>)| {
            let mut t = TopicPartitions::default();
            t.topic_id = *id;
            t.partitions = partitions.iter().copied().collect();
            t
        })
        .collect()
}
