//! DescribeGroups: state, protocol and members (with their metadata and
//! assignment) of each named group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::server::RequestContext;

/// What Kafka sends when authorized operations were not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in body.groups {
        let mut group = DescribedGroup::default();
        group.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        group.error_message = None;
        match broker.groups.describe(&group_id.0) {
            Some(d) => {
                group.group_state = StrBytes::from_static_str(d.state.name());
                group.protocol_type = StrBytes::from_string(d.protocol_type);
                group.protocol_data = StrBytes::from_string(d.protocol);
                group.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = StrBytes::from_string(m.member_id);
                        member.group_instance_id = m.instance_id.map(StrBytes::from_string);
                        member.client_id = StrBytes::from_string(m.client_id);
                        member.client_host = StrBytes::from_string(m.client_host);
                        member.member_metadata = m.metadata;
                        member.member_assignment = m.assignment;
                        member
                    })
                    .collect();
            }
            None => {
                group.group_state = StrBytes::from_static_str("Dead");
                // v6 (KIP-1043) reports a missing group as an error.
                if request.version >= 6 {
                    let e = BrokerError::GroupIdNotFound;
                    group.error_code = e.code();
                    group.error_message = e.message();
                }
            }
        }
        group.group_id = group_id;
        response.groups.push(group);
    }
    response
}
