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
    /// Every transactional id with its state, open time and check-back.
    TxnList,
    /// Sets (or replaces) the checker of a transactional id prefix.
    TxnCheckerSet {
        prefix: String,
        url: String,
    },
    /// Removes a checker set with `TxnCheckerSet`.
    TxnCheckerRemove {
        prefix: String,
    },
    TxnCheckerList,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminResponse {
    GroupRates {
        partitions: Vec<PartitionRateView>,
    },
    Migration {
        status: MigrationStatus,
    },
    MigrationStopped,
    Transactions {
        transactions: Vec<TxnView>,
        checks: u64,
        commits: u64,
        rollbacks: u64,
        unknowns: u64,
        defaulted: u64,
    },
    Checkers {
        checkers: Vec<CheckerView>,
    },
    Error {
        message: String,
    },
}

/// A transactional id as `sluice txn list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TxnView {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: String,
    /// How long its transaction has been open; -1 when none is.
    pub open_ms: i64,
    pub checks: u32,
    /// The checker that decides it, if any.
    pub checker: Option<String>,
}

/// A check-back endpoint and where it was set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckerView {
    pub prefix: String,
    pub url: String,
    /// "settings" (the config file) or "runtime" (`sluice txn checker set`).
    pub source: String,
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
        AdminRequest::TxnList => {
            let now = now_ms();
            let checkers = broker.txns.checkers(&broker.state());
            let progress = broker.txns.check_progress();
            let counts = broker.txns.check_counts();
            AdminResponse::Transactions {
                transactions: broker
                    .txns
                    .all()
                    .into_iter()
                    .map(|(id, meta)| {
                        let open = meta.state == crate::txn::state::TxnState::Ongoing;
                        TxnView {
                            checks: progress
                                .get(&id)
                                .filter(|p| p.for_start_ms == meta.start_ms)
                                .map_or(0, |p| p.checks),
                            checker: crate::txn::checker::checker_for(&checkers, &id)
                                .map(|c| c.url.clone()),
                            transactional_id: id,
                            producer_id: meta.producer_id,
                            producer_epoch: meta.producer_epoch,
                            state: meta.state.name().to_string(),
                            open_ms: if open { now - meta.start_ms } else { -1 },
                        }
                    })
                    .collect(),
                checks: counts.checks,
                commits: counts.commit,
                rollbacks: counts.rollback,
                unknowns: counts.unknown,
                defaulted: counts.defaulted,
            }
        }
        AdminRequest::TxnCheckerSet { prefix, url } => {
            outcome(crate::txn::set_checker(broker, &prefix, &url).map(|()| checker_list(broker)))
        }
        AdminRequest::TxnCheckerRemove { prefix } => {
            outcome(crate::txn::remove_checker(broker, &prefix).map(|()| checker_list(broker)))
        }
        AdminRequest::TxnCheckerList => checker_list(broker),
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

fn checker_list(broker: &Arc<Broker>) -> AdminResponse {
    let state = broker.state();
    let mut checkers: Vec<CheckerView> = broker
        .config
        .transaction_checkers
        .iter()
        .filter(|c| {
            !state
                .transaction_checkers
                .contains_key(&c.transactional_id_prefix)
        })
        .map(|c| CheckerView {
            prefix: c.transactional_id_prefix.clone(),
            url: c.url.clone(),
            source: "settings".into(),
        })
        .collect();
    checkers.extend(
        state
            .transaction_checkers
            .iter()
            .map(|(prefix, url)| CheckerView {
                prefix: prefix.clone(),
                url: url.clone(),
                source: "runtime".into(),
            }),
    );
    checkers.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    AdminResponse::Checkers { checkers }
}
