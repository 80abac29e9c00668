//! JoinGroup: a member joins (or rejoins) a group; the answer comes when
//! the group's rebalance completes.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::classic::{JoinOutcome, JoinRequest};
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: JoinGroupRequest,
) -> JoinGroupResponse {
    let v = request.version;
    let join = JoinRequest {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|s| s.to_string()),
        client_id: request.client_id(),
        client_host: request.client_host(),
        session_timeout: millis(body.session_timeout_ms),
        rebalance_timeout: millis(if v >= 1 {
            body.rebalance_timeout_ms
        } else {
            body.session_timeout_ms
        }),
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let requested_member = join.member_id.clone();
    let outcome = match broker.groups.join(&body.group_id.0, join, &broker.state()) {
        Ok(reply) => reply
            .await
            .unwrap_or(Err(BrokerError::CoordinatorNotAvailable)),
        Err(e) => Err(e),
    };
    let mut response = JoinGroupResponse::default();
    match outcome {
        Ok(outcome) => fill(&mut response, outcome, v),
        Err(e) => {
            response.error_code = e.code();
            response.generation_id = -1;
            response.protocol_name = (v < 7).then(StrBytes::default);
            response.member_id = StrBytes::from_string(match e {
                BrokerError::MemberIdRequired(id) => id,
                _ => requested_member,
            });
        }
    }
    response
}

fn fill(response: &mut JoinGroupResponse, outcome: JoinOutcome, version: i16) {
    response.generation_id = outcome.generation;
    response.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
    response.protocol_name = Some(StrBytes::from_string(outcome.protocol.unwrap_or_default()));
    if version < 7 && response.protocol_name.is_none() {
        response.protocol_name = Some(StrBytes::default());
    }
    response.leader = StrBytes::from_string(outcome.leader);
    response.skip_assignment = outcome.skip_assignment && version >= 9;
    response.member_id = StrBytes::from_string(outcome.member_id);
    response.members = outcome
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = StrBytes::from_string(id);
            m.group_instance_id = instance.map(StrBytes::from_string);
            m.metadata = metadata;
            m
        })
        .collect();
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
