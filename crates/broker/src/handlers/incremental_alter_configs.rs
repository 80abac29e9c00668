//! IncrementalAlterConfigs: set, delete, append to or subtract from topic
//! config overrides. Broker settings are static (file, environment, flags).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use tracing::info;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::topic_config::{self, ConfigType};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub fn handle(
    broker: &Broker,
    body: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in &body.resources {
        let outcome = match resource.resource_type {
            RESOURCE_TOPIC => alter_topic(broker, resource, body.validate_only),
            RESOURCE_BROKER => Err(BrokerError::InvalidRequest(
                "broker settings cannot be changed at runtime; edit the config file and restart"
                    .to_string(),
            )),
            other => Err(BrokerError::InvalidRequest(format!(
                "resource type {other} is not supported"
            ))),
        };
        let mut result = AlterConfigsResourceResponse::default();
        // Kafka sends a null message on success.
        result.error_message = None;
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Err(e) = outcome {
            result.error_code = e.code();
            result.error_message = e.message();
        }
        response.responses.push(result);
    }
    response
}

fn alter_topic(
    broker: &Broker,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<()> {
    let name = resource.resource_name.as_str();
    let mut seen = HashSet::new();
    if let Some(dup) = resource
        .configs
        .iter()
        .find(|c| !seen.insert(c.name.as_str()))
    {
        return Err(BrokerError::InvalidRequest(format!(
            "config '{}' is altered twice in one request",
            dup.name.as_str()
        )));
    }
    let configs = broker.alter_topic_configs(name, validate_only, |current| {
        apply_changes(broker, current, resource)
    })?;
    if !validate_only {
        info!(topic = name, ?configs, "altered topic configs");
    }
    Ok(())
}

/// The overrides that result from applying the request's operations.
fn apply_changes(
    broker: &Broker,
    current: &BTreeMap<String, String>,
    resource: &AlterConfigsResource,
) -> Result<BTreeMap<String, String>> {
    let mut configs = current.clone();
    for change in &resource.configs {
        let key = change.name.as_str();
        let def = topic_config::definition(key)
            .ok_or_else(|| BrokerError::InvalidConfig(format!("unknown topic config '{key}'")))?;
        let value = change.value.as_ref().map(|v| v.to_string());
        match change.config_operation {
            SET => {
                let value = value.ok_or_else(|| {
                    BrokerError::InvalidConfig(format!("SET of '{key}' needs a value"))
                })?;
                configs.insert(key.to_string(), value);
            }
            DELETE => {
                configs.remove(key);
            }
            APPEND | SUBTRACT => {
                if def.config_type != ConfigType::List {
                    return Err(BrokerError::InvalidConfig(format!(
                        "'{key}' is not a list; APPEND and SUBTRACT apply to list configs"
                    )));
                }
                let current = configs
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| topic_config::default_value(key, &broker.config));
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.unwrap_or_default().split(',').map(str::trim) {
                    if item.is_empty() {
                        continue;
                    }
                    if change.config_operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(key.to_string(), items.join(","));
            }
            op => {
                return Err(BrokerError::InvalidRequest(format!(
                    "unknown config operation {op}"
                )))
            }
        }
    }
    Ok(configs)
}
