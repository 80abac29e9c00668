//! Topic configs: the Kafka names Sluice understands, their defaults (taken
//! from broker settings), validation, and their effect on a partition log.

use std::collections::BTreeMap;

use sluice_storage::LogConfig;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};

/// Config value types as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker-wide setting Kafka names as this config's synonym.
    pub broker_synonym: &'static str,
    pub config_type: ConfigType,
    pub doc: &'static str,
}

pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const RETENTION_MS: &str = "retention.ms";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";

pub const DEFINITIONS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: CLEANUP_POLICY,
        broker_synonym: "log.cleanup.policy",
        config_type: ConfigType::List,
        doc: "How old segments are discarded; Sluice supports \"delete\".",
    },
    TopicConfigDef {
        name: COMPRESSION_TYPE,
        broker_synonym: "compression.type",
        config_type: ConfigType::String,
        doc: "Batches are stored compressed as the producer sent them (\"producer\").",
    },
    TopicConfigDef {
        name: INDEX_INTERVAL_BYTES,
        broker_synonym: "log.index.interval.bytes",
        config_type: ConfigType::Int,
        doc: "Bytes of log between two offset-index entries.",
    },
    TopicConfigDef {
        name: MAX_MESSAGE_BYTES,
        broker_synonym: "message.max.bytes",
        config_type: ConfigType::Int,
        doc: "Largest record batch the topic accepts.",
    },
    TopicConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        broker_synonym: "log.message.timestamp.type",
        config_type: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock.",
    },
    TopicConfigDef {
        name: MIN_INSYNC_REPLICAS,
        broker_synonym: "min.insync.replicas",
        config_type: ConfigType::Int,
        doc: "Replicas that must hold a batch before acks=all is answered.",
    },
    TopicConfigDef {
        name: RETENTION_BYTES,
        broker_synonym: "log.retention.bytes",
        config_type: ConfigType::Long,
        doc: "Per-partition size above which the oldest segments are deleted; -1 is no limit.",
    },
    TopicConfigDef {
        name: RETENTION_MS,
        broker_synonym: "log.retention.ms",
        config_type: ConfigType::Long,
        doc: "Age after which a segment is deleted; -1 keeps data forever.",
    },
    TopicConfigDef {
        name: SEGMENT_BYTES,
        broker_synonym: "log.segment.bytes",
        config_type: ConfigType::Int,
        doc: "Size at which a segment file is rolled.",
    },
    TopicConfigDef {
        name: SEGMENT_MS,
        broker_synonym: "log.roll.ms",
        config_type: ConfigType::Long,
        doc: "Age at which a segment file is rolled.",
    },
];

pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

/// The value a topic has for `name` when it sets none itself.
pub fn default_value(name: &str, broker: &BrokerConfig) -> String {
    match name {
        CLEANUP_POLICY => "delete".to_string(),
        COMPRESSION_TYPE => "producer".to_string(),
        INDEX_INTERVAL_BYTES => broker.index_interval_bytes.to_string(),
        MAX_MESSAGE_BYTES => broker.max_message_bytes.to_string(),
        MESSAGE_TIMESTAMP_TYPE => "CreateTime".to_string(),
        MIN_INSYNC_REPLICAS => "1".to_string(),
        RETENTION_BYTES => broker.retention_bytes.to_string(),
        RETENTION_MS => broker.retention_ms.to_string(),
        SEGMENT_BYTES => broker.segment_bytes.to_string(),
        SEGMENT_MS => broker.segment_ms.to_string(),
        _ => String::new(),
    }
}

/// Checks one topic config; unknown names and unsupported values are
/// INVALID_CONFIG with a message saying why.
pub fn validate(name: &str, value: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(BrokerError::InvalidConfig(format!(
            "invalid value '{value}' for {name}: {why}"
        )))
    };
    let int_at_least = |min: i64, max: i64| match value.trim().parse::<i64>() {
        Ok(v) if v >= min && v <= max => Ok(()),
        _ => invalid(&format!("expected an integer between {min} and {max}")),
    };
    match name {
        CLEANUP_POLICY => match value.trim() {
            "delete" => Ok(()),
            _ => invalid("only \"delete\" is supported (compaction is not implemented yet)"),
        },
        COMPRESSION_TYPE => match value.trim() {
            "producer" => Ok(()),
            _ => invalid("only \"producer\" is supported: batches are stored as sent"),
        },
        MESSAGE_TIMESTAMP_TYPE => match value.trim() {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => invalid("expected CreateTime or LogAppendTime"),
        },
        INDEX_INTERVAL_BYTES => int_at_least(0, i64::from(i32::MAX)),
        MAX_MESSAGE_BYTES => int_at_least(0, i64::from(i32::MAX)),
        MIN_INSYNC_REPLICAS => int_at_least(1, i64::from(i32::MAX)),
        RETENTION_BYTES | RETENTION_MS => int_at_least(-1, i64::MAX),
        SEGMENT_BYTES => int_at_least(1024, i64::from(i32::MAX)),
        SEGMENT_MS => int_at_least(1, i64::MAX),
        _ => Err(BrokerError::InvalidConfig(format!(
            "unknown topic config '{name}'"
        ))),
    }
}

/// DescribeConfigs' config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One config of a topic as it is in effect.
pub struct EffectiveConfig {
    pub def: &'static TopicConfigDef,
    pub value: String,
    /// Set on the topic itself rather than inherited.
    pub overridden: bool,
}

impl EffectiveConfig {
    pub fn source(&self) -> i8 {
        if self.overridden {
            SOURCE_TOPIC
        } else {
            SOURCE_DEFAULT
        }
    }
}

/// Every topic config with its value in effect for a topic with `overrides`.
pub fn effective(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Vec<EffectiveConfig> {
    DEFINITIONS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(value) => EffectiveConfig {
                def,
                value: value.clone(),
                overridden: true,
            },
            None => EffectiveConfig {
                def,
                value: default_value(def.name, broker),
                overridden: false,
            },
        })
        .collect()
}

/// Validates a whole set of overrides.
pub fn validate_all<'a>(configs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
    configs.into_iter().try_for_each(|(n, v)| validate(n, v))
}

/// What a topic's configs mean for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    /// The most a batch may inflate to: the broker's
    /// `max_uncompressed_batch_bytes`, and never below `max_message_bytes`.
    pub max_uncompressed_batch_bytes: usize,
    pub log_append_time: bool,
}

/// The effective settings of a topic: its overrides over broker defaults.
pub fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> TopicSettings {
    let get = |name: &str| -> String {
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| default_value(name, broker))
    };
    let num = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
    let max_message_bytes = num(MAX_MESSAGE_BYTES, broker.max_message_bytes as i64) as usize;
    TopicSettings {
        log: LogConfig {
            segment_bytes: num(SEGMENT_BYTES, broker.segment_bytes as i64) as u64,
            segment_ms: num(SEGMENT_MS, broker.segment_ms),
            retention_ms: num(RETENTION_MS, broker.retention_ms),
            retention_bytes: num(RETENTION_BYTES, broker.retention_bytes),
            index_interval_bytes: num(INDEX_INTERVAL_BYTES, broker.index_interval_bytes as i64)
                as u64,
            producer_id_expiration_ms: broker.producer_id_expiration_ms,
        },
        max_message_bytes,
        max_uncompressed_batch_bytes: broker.max_uncompressed_batch_bytes.max(max_message_bytes),
        log_append_time: get(MESSAGE_TIMESTAMP_TYPE).trim() == "LogAppendTime",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert(RETENTION_MS.to_string(), "1000".to_string());
        overrides.insert(
            MESSAGE_TIMESTAMP_TYPE.to_string(),
            "LogAppendTime".to_string(),
        );
        let settings = resolve(&overrides, &broker);
        assert_eq!(settings.log.retention_ms, 1000);
        assert_eq!(settings.log.segment_bytes, broker.segment_bytes);
        assert!(settings.log_append_time);
    }

    #[test]
    fn unknown_and_bad_values_are_invalid_config() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(matches!(
            validate("retention.ms", "soon"),
            Err(BrokerError::InvalidConfig(_))
        ));
        assert!(matches!(
            validate("no.such.config", "1"),
            Err(BrokerError::InvalidConfig(_))
        ));
        assert!(validate(CLEANUP_POLICY, "compact").is_err());
    }
}
