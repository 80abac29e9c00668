//! DeleteTopics: remove topics, named by name (v0-v5) or by name or id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::server::RequestContext;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 moved the names into `topics`, where an entry may give an id instead.
    let targets: Vec<(Option<String>, Uuid)> = if request.version >= 6 {
        body.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        body.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default();
        // Kafka sends a null message on success.
        result.error_message = None;
        let resolved = match &name {
            Some(name) => Ok(name.clone()),
            None => broker
                .state()
                .topic_by_id(id)
                .map(|t| t.name.clone())
                .ok_or(BrokerError::UnknownTopicId),
        };
        match resolved.and_then(|n| broker.delete_topic(&n)) {
            Ok(topic) => {
                info!(peer = %request.peer, topic = %topic.name, "DeleteTopics");
                result.name = Some(TopicName(StrBytes::from_string(topic.name)));
                result.topic_id = topic.id;
            }
            Err(e) => {
                result.name = name.map(|n| TopicName(StrBytes::from_string(n)));
                result.topic_id = id;
                result.error_code = e.code();
                result.error_message = e.message();
            }
        }
        response.responses.push(result);
    }
    response
}
