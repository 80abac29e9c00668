//! ListGroups: every group, optionally filtered by state (v4+) and type
//! (v5+: "classic" or "consumer").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub fn handle(broker: &Broker, body: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = body
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = body.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut response = ListGroupsResponse::default();
    for group in broker.groups.list() {
        let state = group.state;
        if !states.is_empty() && !states.contains(&state.to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == group.group_type) {
            continue;
        }
        let mut listed = ListedGroup::default();
        listed.group_id = GroupId(StrBytes::from_string(group.group_id));
        listed.protocol_type = StrBytes::from_string(group.protocol_type);
        listed.group_state = StrBytes::from_static_str(state);
        listed.group_type = StrBytes::from_static_str(group.group_type);
        response.groups.push(listed);
    }
    response
}
