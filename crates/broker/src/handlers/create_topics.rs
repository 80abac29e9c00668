//! CreateTopics: validate each topic (name, partitions, replication,
//! assignment, configs) and create it, or only validate with
//! `validate_only`.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::server::RequestContext;
use crate::topic_config;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = body
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut response = CreateTopicsResponse::default();
    for topic in &body.topics {
        let name = topic.name.0.to_string();
        let outcome = if duplicates.contains(&name) {
            Err(BrokerError::InvalidRequest(format!(
                "topic '{name}' appears more than once in the request"
            )))
        } else {
            create(broker, topic, body.validate_only)
        };
        let mut result = CreatableTopicResult::default();
        // Kafka sends a null message on success.
        result.error_message = None;
        result.name = topic.name.clone();
        match outcome {
            Ok((partitions, configs)) => {
                if !body.validate_only {
                    info!(peer = %request.peer, topic = %name, "CreateTopics");
                }
                result.topic_id = broker
                    .state()
                    .topic(&name)
                    .map(|t| t.id)
                    .unwrap_or_default();
                result.num_partitions = partitions;
                result.replication_factor = 1;
                result.configs = Some(describe(broker, &configs));
            }
            Err(e) => {
                result.error_code = e.code();
                result.error_message = e.message();
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        response.topics.push(result);
    }
    response
}

/// Creates (or validates) one topic; returns its partition count and config
/// overrides.
fn create(
    broker: &Broker,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<(i32, BTreeMap<String, String>)> {
    let name = topic.name.0.as_str();
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let value = config.value.as_ref().ok_or_else(|| {
            BrokerError::InvalidConfig(format!("config '{}' has a null value", &*config.name))
        })?;
        configs.insert(config.name.to_string(), value.to_string());
    }
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.config.default_partitions,
            n => n,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(BrokerError::InvalidRequest(
                "give either numPartitions and replicationFactor, or replica assignments, not both"
                    .to_string(),
            ));
        }
        let mut indexes: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err(BrokerError::InvalidReplicaAssignment(
                "partitions in the assignment must be numbered 0, 1, 2, ... without gaps"
                    .to_string(),
            ));
        }
        for assignment in &topic.assignments {
            let ids: Vec<i32> = assignment.broker_ids.iter().map(|b| b.0).collect();
            broker.check_assignment(&ids)?;
        }
        topic.assignments.len() as i32
    };
    let replication_factor = match topic.replication_factor {
        -1 => 1,
        n => n,
    };
    if validate_only {
        broker.validate_new_topic(name, partitions, replication_factor, &configs)?;
    } else {
        broker.create_topic(name, partitions, replication_factor, configs.clone())?;
    }
    Ok((partitions, configs))
}

fn describe(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    topic_config::effective(overrides, &broker.config)
        .into_iter()
        .map(|c| {
            let mut out = CreatableTopicConfigs::default();
            out.name = StrBytes::from_static_str(c.def.name);
            out.config_source = c.source();
            out.value = Some(StrBytes::from_string(c.value));
            out
        })
        .collect()
}
