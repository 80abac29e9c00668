//! DescribeConfigs: a topic's configs (with where each value comes from) or
//! the broker's settings under their Kafka names.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::server::RequestContext;
use crate::topic_config::{self, ConfigType, SOURCE_DEFAULT, SOURCE_STATIC_BROKER};

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub fn handle(
    broker: &Broker,
    _request: &RequestContext,
    body: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in &body.resources {
        let mut result = DescribeConfigsResult::default();
        // Kafka sends a null message on success.
        result.error_message = None;
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let configs = match resource.resource_type {
            RESOURCE_TOPIC => topic_configs(broker, &resource.resource_name, &body),
            RESOURCE_BROKER => broker_configs(broker, &resource.resource_name, &body),
            other => Err(BrokerError::InvalidRequest(format!(
                "resource type {other} is not supported"
            ))),
        };
        match configs {
            Ok(configs) => {
                result.configs = configs
                    .into_iter()
                    .filter(|c| wanted(c.name.as_str()))
                    .collect()
            }
            Err(e) => {
                result.error_code = e.code();
                result.error_message = e.message();
            }
        }
        response.results.push(result);
    }
    response
}

fn topic_configs(
    broker: &Broker,
    name: &str,
    body: &DescribeConfigsRequest,
) -> Result<Vec<DescribeConfigsResourceResult>> {
    let state = broker.state();
    let topic = state
        .topic(name)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    Ok(topic_config::effective(&topic.configs, &broker.config)
        .into_iter()
        .map(|c| {
            let mut out = entry(c.def.name, &c.value, c.source(), c.def.config_type);
            if body.include_synonyms {
                if c.overridden {
                    out.synonyms.push(synonym(c.def.name, &c.value, c.source()));
                }
                let default = topic_config::default_value(c.def.name, &broker.config);
                out.synonyms
                    .push(synonym(c.def.broker_synonym, &default, SOURCE_DEFAULT));
            }
            if body.include_documentation {
                out.documentation = Some(StrBytes::from_static_str(c.def.doc));
            }
            out
        })
        .collect())
}

fn broker_configs(
    broker: &Broker,
    name: &str,
    body: &DescribeConfigsRequest,
) -> Result<Vec<DescribeConfigsResourceResult>> {
    if !name.is_empty() && name != broker.config.node_id.to_string() {
        return Err(BrokerError::InvalidRequest(format!(
            "broker '{name}' is not this broker ({})",
            broker.config.node_id
        )));
    }
    Ok(broker
        .config
        .kafka_named_settings()
        .into_iter()
        .map(|s| {
            let source = if s.is_set {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let mut out = entry(s.name, &s.value, source, ConfigType::String);
            out.read_only = true;
            if body.include_synonyms {
                out.synonyms.push(synonym(s.name, &s.value, source));
            }
            out
        })
        .collect())
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    config_type: ConfigType,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default();
    out.name = StrBytes::from_string(name.to_string());
    out.value = Some(StrBytes::from_string(value.to_string()));
    out.config_source = source;
    out.config_type = config_type as i8;
    out
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    let mut out = DescribeConfigsSynonym::default();
    out.name = StrBytes::from_string(name.to_string());
    out.value = Some(StrBytes::from_string(value.to_string()));
    out.source = source;
    out
}
