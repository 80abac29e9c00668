//! The transaction coordinator: InitProducerId with a transactional id,
//! AddPartitionsToTxn, EndTxn, transaction timeouts, and the markers that
//! end a transaction in each of its partitions.
//!
//! Each transactional id's state (`state.rs`) is durable in the internal
//! topic `__transaction_state` (`records.rs`; same fsync policy and crash
//! recovery as any data) before the coordinator answers or acts on it, and
//! is replayed on start. A transaction caught between its decision
//! (PrepareCommit/PrepareAbort stored) and its completion has its markers
//! written again on start, so a commit once decided completes.
//!
//! Against hanging transactions (Jepsen's finding: a late write of an
//! aborted transaction opening a new one that no marker ever ends, which
//! blocks `read_committed` readers forever), a transactional write is
//! verified here before it is appended: its producer id and epoch are the
//! transaction's, the transaction is open and the partition is in it. The
//! check and the append happen under a shared gate of the transactional
//! id, and ending the transaction takes that gate alone, so no verified
//! write can land after a marker.

pub mod checker;
pub mod records;
pub mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::error::{BrokerError, Result};
use state::{InitOutcome, TopicPartition, TxnMetadata, TxnState};

/// The internal topic holding transaction states.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// Limits the coordinator runs under (broker settings).
#[derive(Debug, Clone)]
pub struct TxnLimits {
    pub state_partitions: i32,
    pub max_timeout_ms: i32,
    pub max_transactional_ids: usize,
    pub check_after_ms: i64,
    pub check_interval_ms: i64,
    pub check_max: u32,
    pub check_default_commit: bool,
    pub check_timeout: std::time::Duration,
}

/// Where the check-back of one open transaction stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckProgress {
    /// The transaction these checks are about (its start time).
    pub for_start_ms: i64,
    pub checks: u32,
    pub next_at_ms: i64,
}

/// Every check and decision since start, by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckCounts {
    pub checks: u64,
    pub commit: u64,
    pub rollback: u64,
    pub unknown: u64,
    pub defaulted: u64,
}

/// What `tick` does for one transactional id.
enum Due {
    /// Past its timeout, no checker: abort (fencing the producer).
    TimedOut,
    /// Decided, markers not all written: finish.
    Interrupted,
    /// Open long enough: ask its checker.
    Check(crate::config::TransactionChecker),
}

pub struct TransactionCoordinator {
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// The check-back endpoints (settings; changeable at run time).
    checkers: Mutex<Vec<crate::config::TransactionChecker>>,
    checks: Mutex<HashMap<String, CheckProgress>>,
    /// Transactional ids whose check is under way (`tick` starts no other).
    in_check: Mutex<HashSet<String>>,
    counts: Mutex<CheckCounts>,
    /// Per transactional id: shared by verified writes, alone by state
    /// changes (see the module comment).
    gates: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    limits: TxnLimits,
}

/// Held by a produce request from its check to its append.
pub type WriteGate = OwnedRwLockReadGuard<()>;

impl TransactionCoordinator {
    /// The checkers in force: the settings', overridden (by prefix) and
    /// extended by those set at run time.
    pub fn checkers(
        &self,
        state: &crate::metadata::ClusterState,
    ) -> Vec<crate::config::TransactionChecker> {
        let mut checkers: Vec<crate::config::TransactionChecker> = self
            .checkers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| {
                !state
                    .transaction_checkers
                    .contains_key(&c.transactional_id_prefix)
            })
            .cloned()
            .collect();
        checkers.extend(state.transaction_checkers.iter().map(|(prefix, url)| {
            crate::config::TransactionChecker {
                transactional_id_prefix: prefix.clone(),
                url: url.clone(),
            }
        }));
        checkers
    }

    pub fn new(
        limits: TxnLimits,
        checkers: Vec<crate::config::TransactionChecker>,
    ) -> TransactionCoordinator {
        TransactionCoordinator {
            txns: Mutex::new(HashMap::new()),
            checkers: Mutex::new(checkers),
            checks: Mutex::new(HashMap::new()),
            in_check: Mutex::new(HashSet::new()),
            counts: Mutex::new(CheckCounts::default()),
            gates: Mutex::new(HashMap::new()),
            limits,
        }
    }

    fn txns(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        self.txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self, transactional_id: &str) -> Arc<RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(gates.entry(transactional_id.to_string()).or_default())
    }

    async fn exclusive(&self, transactional_id: &str) -> OwnedRwLockWriteGuard<()> {
        self.gate(transactional_id).write_owned().await
    }

    pub fn get(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.txns().get(transactional_id).cloned()
    }

    /// Every transactional id's state, by id.
    pub fn all(&self) -> BTreeMap<String, TxnMetadata> {
        self.txns()
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// Rebuilds the states from `__transaction_state`, if it exists.
    pub fn load(&self, broker: &Broker) {
        let mut txns = self.txns();
        broker.replay_topic(TXN_STATE_TOPIC, |_, header, batch| {
            let walked = crate::record_batch::for_each_record(batch, header.base_offset, |_, record| {
                let Some(id) = record.key.and_then(records::decode_key) else {
                    return;
                };
                match record.value.map(|v| records::decode_value(&id, v)) {
                    Some(Some(meta)) => {
                        txns.insert(id, meta);
                    }
                    Some(None) => warn!(transactional_id = %id, "a damaged transaction state; keeping the previous one"),
                    None => {
                        txns.remove(&id);
                    }
                }
            });
            if let Err(e) = walked {
                warn!(error = %e, "a damaged batch in {TXN_STATE_TOPIC}; skipping it");
            }
        });
        if !txns.is_empty() {
            info!(transactional_ids = txns.len(), "loaded transaction states");
        }
    }

    fn ensure_state_topic(&self, broker: &Broker) -> Result<()> {
        if broker.state().topic(TXN_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
        ]);
        match broker.create_topic(TXN_STATE_TOPIC, self.limits.state_partitions, 1, configs) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes `meta` durable in `__transaction_state`, then current.
    async fn store(&self, broker: &Broker, meta: TxnMetadata) -> Result<TxnMetadata> {
        self.ensure_state_topic(broker)?;
        let index = records::partition_for(&meta.transactional_id, self.limits.state_partitions);
        let partition = broker
            .partition(TXN_STATE_TOPIC, index)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        let record = crate::record_batch::record(
            now_ms(),
            Some(records::encode_key(&meta.transactional_id).into()),
            Some(records::encode_value(&meta).into()),
            Default::default(),
        );
        let info = partition.append(crate::record_batch::encode(vec![record])?, now_ms())?;
        broker
            .commit_append(&partition, info.last_offset + 1)
            .await?;
        self.txns()
            .insert(meta.transactional_id.clone(), meta.clone());
        Ok(meta)
    }

    fn check_timeout(&self, timeout_ms: i32) -> Result<()> {
        if timeout_ms <= 0 || timeout_ms > self.limits.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout(format!(
                "transaction timeout {timeout_ms} ms is outside (0, {}] (transaction_max_timeout_ms)",
                self.limits.max_timeout_ms
            )));
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: its producer id and a new
    /// epoch, which fences every older instance. An open transaction of
    /// the id is aborted first.
    pub async fn init_producer_id(
        &self,
        broker: &Broker,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16)> {
        if transactional_id.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "the transactional id is empty".into(),
            ));
        }
        self.check_timeout(timeout_ms)?;
        let _gate = self.exclusive(transactional_id).await;
        let now = now_ms();
        let Some(current) = self.get(transactional_id) else {
            if self.txns().len() >= self.limits.max_transactional_ids {
                return Err(BrokerError::PolicyViolation(format!(
                    "the broker holds {} transactional ids; max_transactional_ids is {}",
                    self.limits.max_transactional_ids, self.limits.max_transactional_ids
                )));
            }
            let producer_id = broker.producer_ids.next(broker)?;
            let meta = TxnMetadata::new(transactional_id, producer_id, timeout_ms, now);
            let meta = self.store(broker, meta).await?;
            info!(transactional_id, producer_id, "new transactional id");
            return Ok((meta.producer_id, meta.producer_epoch));
        };
        let new_id = || broker.producer_ids.next(broker);
        let ready = match current.init_producer_id(timeout_ms, expected, new_id, now)? {
            InitOutcome::Ready(next) => next,
            InitOutcome::AbortFirst(aborting) => {
                info!(
                    transactional_id,
                    epoch = aborting.producer_epoch,
                    "a new instance of the producer: its open transaction is aborted"
                );
                let done = self.finish(broker, aborting).await?;
                match done.init_producer_id(
                    timeout_ms,
                    None,
                    || broker.producer_ids.next(broker),
                    now,
                )? {
                    InitOutcome::Ready(next) => next,
                    InitOutcome::AbortFirst(_) => {
                        return Err(BrokerError::ConcurrentTransactions(
                            transactional_id.to_string(),
                        ))
                    }
                }
            }
        };
        let meta = self.store(broker, ready).await?;
        Ok((meta.producer_id, meta.producer_epoch))
    }

    /// AddPartitionsToTxn, or (`v2`) a Transactions V2 producer's first
    /// write to them: these partitions join the open transaction.
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        v2: bool,
    ) -> Result<()> {
        let _gate = self.exclusive(transactional_id).await;
        let current = self
            .get(transactional_id)
            .ok_or_else(|| unknown_id(transactional_id))?;
        if let Some(next) =
            current.add_partitions(producer_id, producer_epoch, partitions, v2, now_ms())?
        {
            self.store(broker, next).await?;
        }
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction. Answers once every
    /// marker is written, so that a reader that starts afterwards sees the
    /// outcome, with the producer id and epoch for the next transaction
    /// (bumped when `v2`: EndTxn v5+).
    pub async fn end(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        v2: bool,
    ) -> Result<(i64, i16)> {
        let _gate = self.exclusive(transactional_id).await;
        let current = self
            .get(transactional_id)
            .ok_or_else(|| unknown_id(transactional_id))?;
        let new_id = || broker.producer_ids.next(broker);
        let done = match current.end(producer_id, producer_epoch, commit, v2, new_id, now_ms())? {
            Some(prepared) => self.finish(broker, prepared).await?,
            None => current,
        };
        Ok((done.producer_id, done.producer_epoch))
    }

    /// Stores a decided transaction (PrepareCommit or PrepareAbort), writes
    /// its markers, and stores it complete. The caller holds its gate.
    async fn finish(&self, broker: &Broker, prepared: TxnMetadata) -> Result<TxnMetadata> {
        let prepared = self.store(broker, prepared).await?;
        self.write_markers(broker, &prepared).await?;
        let done = prepared.complete(now_ms());
        self.store(broker, done).await
    }

    /// Writes the transaction's marker into each of its partitions and
    /// waits until they are durable and visible: every marker is appended
    /// first, then all are made durable together, so that ending a
    /// transaction over many partitions costs one round of syncs, not one
    /// per partition. A partition deleted since is skipped.
    async fn write_markers(&self, broker: &Broker, meta: &TxnMetadata) -> Result<()> {
        let commit = meta.state == TxnState::PrepareCommit;
        let mut appended = Vec::new();
        for (topic, index) in &meta.partitions {
            let Some(partition) = broker.partition(topic, *index) else {
                warn!(transactional_id = %meta.transactional_id, topic, partition = index, "no marker for a deleted partition");
                continue;
            };
            let marker = crate::record_batch::marker(
                meta.producer_id,
                meta.producer_epoch,
                commit,
                now_ms(),
            )?;
            let info = partition.append(marker, now_ms())?;
            appended.push((topic, *index, partition, info.last_offset + 1));
        }
        let markers: Vec<(&crate::partition::PartitionRef, i64)> = appended
            .iter()
            .map(|(_, _, partition, end)| (partition, *end))
            .collect();
        for outcome in broker.commit_appends(&markers).await {
            outcome?;
        }
        for (topic, index, _, _) in &appended {
            if *topic == crate::group::OFFSETS_TOPIC {
                // Offsets committed in the transaction apply, or vanish.
                broker
                    .groups
                    .end_transaction(*index, meta.producer_id, commit);
            }
        }
        Ok(())
    }

    /// Checks a produce request's transactional writes: the producer is the
    /// transactional id's current one and each partition is in its open
    /// transaction. With `implicit_add` (a Transactions V2 producer: Produce
    /// v12+, TxnOffsetCommit v5+) partitions not yet in the transaction
    /// join it first, durably, as AddPartitionsToTxn would. The gate
    /// returned must be held until the appends are done. Per-partition
    /// results, in order.
    pub async fn verify_writes(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer: (i64, i16),
        partitions: &[TopicPartition],
        implicit_add: bool,
    ) -> (WriteGate, Vec<Result<()>>) {
        if implicit_add {
            let missing: Vec<TopicPartition> = match self.get(transactional_id) {
                Some(meta) if meta.state == TxnState::Ongoing => partitions
                    .iter()
                    .filter(|p| !meta.partitions.contains(*p))
                    .cloned()
                    .collect(),
                _ => partitions.to_vec(),
            };
            if !missing.is_empty() {
                let added = self
                    .add_partitions(
                        broker,
                        transactional_id,
                        producer.0,
                        producer.1,
                        &missing,
                        true,
                    )
                    .await;
                if let Err(e) = added {
                    let gate = self.gate(transactional_id).read_owned().await;
                    let e = produce_error(e);
                    return (gate, partitions.iter().map(|_| Err(e.clone())).collect());
                }
            }
        }
        let gate = self.gate(transactional_id).read_owned().await;
        let current = self.get(transactional_id);
        let results = partitions
            .iter()
            .map(|partition| {
                let meta = current
                    .as_ref()
                    .ok_or_else(|| unknown_id(transactional_id))?;
                meta.check_producer(producer.0, producer.1)
                    .map_err(produce_error)?;
                if meta.state != TxnState::Ongoing || !meta.partitions.contains(partition) {
                    return Err(BrokerError::InvalidTxnState(format!(
                        "{}-{} is not in an open transaction of '{transactional_id}'; \
                         add it with AddPartitionsToTxn first",
                        partition.0, partition.1
                    )));
                }
                Ok(())
            })
            .collect();
        (gate, results)
    }

    /// The check-back progress of each open transaction being checked.
    pub fn check_progress(&self) -> HashMap<String, CheckProgress> {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every check and decision since start.
    pub fn check_counts(&self) -> CheckCounts {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CheckCounts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Aborts open transactions past their timeout (fencing their
    /// producers) unless a checker decides them, asks the checkers about
    /// transactions open long enough, and completes decided ones whose
    /// markers a crash interrupted.
    pub async fn tick(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        let checkers = self.checkers(&broker.state());
        let progress = self.check_progress();
        let due: Vec<(String, Due)> = self
            .txns()
            .iter()
            .filter_map(|(id, m)| {
                if m.state.is_preparing() {
                    return Some((id.clone(), Due::Interrupted));
                }
                if m.state != TxnState::Ongoing {
                    return None;
                }
                match checker::checker_for(&checkers, id) {
                    Some(_) if self.checking().contains(id) => None,
                    Some(c) => {
                        let p = progress.get(id).filter(|p| p.for_start_ms == m.start_ms);
                        let open_long_enough = now - m.start_ms >= self.limits.check_after_ms;
                        let next_due = p.is_none_or(|p| p.next_at_ms <= now);
                        (open_long_enough && next_due).then(|| (id.clone(), Due::Check(c.clone())))
                    }
                    None => m.timed_out(now).then(|| (id.clone(), Due::TimedOut)),
                }
            })
            .collect();
        for (id, due) in due {
            if let Due::Check(_) = due {
                // A check waits on another process: each runs on its own,
                // so that a slow checker holds up nothing else.
                self.checking().insert(id.clone());
                let broker = Arc::clone(broker);
                tokio::spawn(async move {
                    if let Err(e) = broker.txns.act(&broker, &id, due).await {
                        warn!(transactional_id = %id, error = %e, "cannot decide a checked transaction; will retry");
                    }
                    broker.txns.checking().remove(&id);
                });
                continue;
            }
            if let Err(e) = self.act(broker, &id, due).await {
                warn!(transactional_id = %id, error = %e, "cannot decide or complete a transaction; will retry");
            }
        }
    }

    /// Transactional ids whose check is under way.
    fn checking(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_check.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn act(&self, broker: &Broker, id: &str, due: Due) -> Result<()> {
        let decision = match due {
            Due::Interrupted => None,
            Due::TimedOut => Some(false),
            Due::Check(checker) => {
                let Some(current) = self.get(id) else {
                    return Ok(());
                };
                self.check(id, &current, &checker).await
            }
        };
        let _gate = self.exclusive(id).await;
        let Some(current) = self.get(id) else {
            return Ok(());
        };
        let decided = match decision {
            None if current.state.is_preparing() => current,
            Some(commit) if current.state == TxnState::Ongoing => {
                info!(
                    transactional_id = id,
                    outcome = if commit { "commit" } else { "abort" },
                    "the broker ends the transaction and fences its producer"
                );
                current.fence_and_decide(commit, now_ms())
            }
            _ => return Ok(()),
        };
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.finish(broker, decided).await?;
        Ok(())
    }

    /// One check of an open transaction: Some(commit?) when it is decided
    /// (by the answer, or by `transaction_check_default` once the checks
    /// ran out), None to ask again later.
    async fn check(
        &self,
        id: &str,
        current: &TxnMetadata,
        checker: &crate::config::TransactionChecker,
    ) -> Option<bool> {
        let request = checker::CheckRequest {
            transactional_id: id.to_string(),
            producer_id: current.producer_id,
            producer_epoch: current.producer_epoch,
            open_since_ms: current.start_ms,
            partitions: current
                .partitions
                .iter()
                .map(|(topic, partition)| checker::CheckPartition {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
        };
        let (decision, why) = checker::ask(&checker.url, &request, self.limits.check_timeout).await;
        let checks = {
            let mut all = self.checks.lock().unwrap_or_else(|p| p.into_inner());
            let p = all.entry(id.to_string()).or_default();
            if p.for_start_ms != current.start_ms {
                *p = CheckProgress {
                    for_start_ms: current.start_ms,
                    ..CheckProgress::default()
                };
            }
            p.checks += 1;
            p.next_at_ms = now_ms() + self.limits.check_interval_ms;
            p.checks
        };
        self.count(|c| {
            c.checks += 1;
            match decision {
                checker::Decision::Commit => c.commit += 1,
                checker::Decision::Rollback => c.rollback += 1,
                checker::Decision::Unknown => c.unknown += 1,
            }
        });
        info!(
            transactional_id = id,
            url = %checker.url,
            check = checks,
            answer = decision.name(),
            why = %why,
            "transaction check-back"
        );
        match decision {
            checker::Decision::Commit => Some(true),
            checker::Decision::Rollback => Some(false),
            checker::Decision::Unknown if checks >= self.limits.check_max => {
                self.count(|c| c.defaulted += 1);
                let commit = self.limits.check_default_commit;
                info!(
                    transactional_id = id,
                    checks,
                    outcome = if commit { "commit" } else { "abort" },
                    "checks ran out; transaction_check_default applies"
                );
                Some(commit)
            }
            checker::Decision::Unknown => None,
        }
    }
}

/// `sluice txn checker set`: a checker for `prefix`, kept in the cluster
/// metadata so that it outlives a restart.
pub fn set_checker(broker: &Broker, prefix: &str, url: &str) -> Result<()> {
    if !url.starts_with("http://") {
        return Err(BrokerError::InvalidRequest(format!(
            "checker url '{url}' must start with http:// (https is not supported)"
        )));
    }
    broker.apply_metadata(crate::metadata::MetadataCommand::SetTransactionChecker {
        prefix: prefix.to_string(),
        url: url.to_string(),
    })?;
    info!(prefix, url, "transaction checker set");
    Ok(())
}

/// `sluice txn checker remove`: forgets a checker set at run time.
pub fn remove_checker(broker: &Broker, prefix: &str) -> Result<()> {
    broker.apply_metadata(crate::metadata::MetadataCommand::RemoveTransactionChecker {
        prefix: prefix.to_string(),
    })?;
    info!(prefix, "transaction checker removed");
    Ok(())
}

/// A transaction check's error as a write reports it: a fenced producer
/// is INVALID_PRODUCER_EPOCH there, and a transaction still being ended is
/// a retriable NOT_ENOUGH_REPLICAS, as Kafka maps it for produce.
fn produce_error(e: BrokerError) -> BrokerError {
    match e {
        BrokerError::ProducerFenced(why) => BrokerError::InvalidProducerEpoch(why),
        BrokerError::ConcurrentTransactions(id) => BrokerError::NotEnoughReplicas(format!(
            "the previous transaction of '{id}' is still being ended; retry"
        )),
        other => other,
    }
}

fn unknown_id(transactional_id: &str) -> BrokerError {
    BrokerError::InvalidProducerIdMapping(format!(
        "transactional id '{transactional_id}' has no producer id; call InitProducerId first"
    ))
}
