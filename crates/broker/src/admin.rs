//! Sluice's own admin API, for what the Kafka protocol has no request for
//! (a group's consumption rates, topic migrations). It
//! rides on the Kafka listener under an API key far from Kafka's own,
//! which is not advertised in ApiVersions, so no Kafka client ever sees it;
//! a Kafka broker closes the connection on it, which tells the `sluice`
//! command that it talks to some other broker.
//!
//! ```text
//! request:  size i32, api key i16 (32000), version i16 (0),
//!           correlation id i32, client id (i16 length, -1 for null),
//!           then a JSON AdminRequest filling the rest of the frame
//! response: size i32, correlation id i32, then a JSON AdminResponse
//! ```

use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::broker::{now_ms, Broker};
use crate::migrate::MigrationStatus;
use crate::server::{CloseReason, EncodedBody};

pub const ADMIN_API_KEY: i16 = 32000;
pub const ADMIN_API_VERSION: i16 = 0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Each partition's consumption rate over the last minute.
    GroupRates {
        group: String,
    },
    /// Starts forwarding `group`'s backlog on `from` into `to`.
    MigrationStart {
        group: String,
        from: String,
        to: String,
        partitions: i32,
    },
    MigrationStatus {
        from: String,
    },
    MigrationStop {
        from: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminResponse {
    GroupRates { partitions: Vec<PartitionRateView> },
    Migration { status: MigrationStatus },
    MigrationStopped,
    Error { message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionRateView {
    pub topic: String,
    pub partition: i32,
    pub per_second: f64,
    pub window_ms: i64,
    /// The member that committed last (empty for simple commits).
    pub member_id: String,
}

/// Answers one admin frame (the whole frame after its size).
pub fn handle(broker: &Arc<Broker>, mut frame: Bytes) -> Result<EncodedBody, CloseReason> {
    if frame.len() < 10 {
        return Err("truncated admin request header".into());
    }
    let _api_key = frame.get_i16();
    let version = frame.get_i16();
    let correlation_id = frame.get_i32();
    let client_id_len = frame.get_i16();
    if client_id_len > 0 {
        let len = client_id_len as usize;
        if frame.len() < len {
            return Err("truncated admin request header".into());
        }
        frame.advance(len);
    }
    if version != ADMIN_API_VERSION {
        return Err(format!("unsupported admin API version {version}"));
    }
    let response = match serde_json::from_slice::<AdminRequest>(&frame) {
        Ok(request) => answer(broker, request),
        Err(e) => AdminResponse::Error {
            message: format!("malformed admin request: {e}"),
        },
    };
    let json = serde_json::to_vec(&response).map_err(|e| format!("cannot encode: {e}"))?;
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&((4 + json.len()) as i32).to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&json);
    let mut body = EncodedBody::default();
    body.push_bytes(Bytes::from(out));
    Ok(body)
}

fn answer(broker: &Arc<Broker>, request: AdminRequest) -> AdminResponse {
    let outcome = |result: crate::error::Result<AdminResponse>| {
        result.unwrap_or_else(|e| AdminResponse::Error {
            message: e.to_string(),
        })
    };
    match request {
        AdminRequest::MigrationStart {
            group,
            from,
            to,
            partitions,
        } => outcome(
            crate::migrate::start(broker, &group, &from, &to, partitions)
                .and_then(|_| crate::migrate::status(broker, &from))
                .map(|status| AdminResponse::Migration { status }),
        ),
        AdminRequest::MigrationStatus { from } => outcome(
            crate::migrate::status(broker, &from).map(|status| AdminResponse::Migration { status }),
        ),
        AdminRequest::MigrationStop { from } => {
            outcome(crate::migrate::stop(broker, &from).map(|()| AdminResponse::MigrationStopped))
        }
        AdminRequest::GroupRates { group } => AdminResponse::GroupRates {
            partitions: broker
                .groups
                .consumption_rates(&group, now_ms())
                .into_iter()
                .map(|p| PartitionRateView {
                    topic: p.topic,
                    partition: p.partition,
                    per_second: p.rate.per_second,
                    window_ms: p.rate.window_ms,
                    member_id: p.rate.member,
                })
                .collect(),
        },
    }
}
