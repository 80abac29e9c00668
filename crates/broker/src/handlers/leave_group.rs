//! LeaveGroup: one member (v0-v2) or a batch of members, by member id or
//! by group instance id (v3+), leave; the rest rebalance.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::Broker;
use crate::error::code_of;
use crate::server::RequestContext;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = body.group_id.0.to_string();
    let topics = broker.state();
    let mut response = LeaveGroupResponse::default();
    if request.version < 3 {
        let outcome = broker.groups.leave(&group, &body.member_id, None, &topics);
        response.error_code = code_of(&outcome);
        return response;
    }
    for member in body.members {
        let instance = member.group_instance_id.as_deref();
        let outcome = broker
            .groups
            .leave(&group, &member.member_id, instance, &topics);
        let mut result = MemberResponse::default();
        result.member_id = member.member_id;
        result.group_instance_id = member.group_instance_id;
        result.error_code = code_of(&outcome);
        response.members.push(result);
    }
    response
}
