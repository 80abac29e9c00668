//! Topic migration (`sluice topic migrate`): the source document's recipe
//! for a backlog that more consumers cannot drain because its topic has
//! too few partitions. A forwarder inside the broker moves everything from
//! a group's committed offsets on the source topic, and whatever keeps
//! arriving, into a wider topic, and advances the group's offsets on the
//! source as it goes.
//!
//! - Keyed records land where Kafka's partitioner puts them on the new
//!   topic (murmur2 of the key), so each key keeps its order; unkeyed
//!   records are spread round-robin.
//! - Each forwarded record carries its origin in headers
//!   (`sluice.source.topic`, `sluice.source.partition`,
//!   `sluice.source.offset`), besides its own key, value, timestamp and
//!   headers.
//! - Exactly once across a crash: the forwarder appends a round of records,
//!   makes them durable, then commits the group's offsets. A restarted
//!   forwarder starts from the committed offsets and skips every record
//!   whose origin it finds in the new topic after the migration's
//!   checkpoint: the positions the new topic had after some earlier round
//!   had been committed, recorded every few seconds in the cluster
//!   metadata. Whatever was forwarded before the checkpoint is covered by
//!   the committed offsets, whatever after it is found by the scan. A key
//!   always lands on one partition, whose appends are in order, so
//!   skipping individual records never reorders a key.
//!
//! The migration runs until stopped (`--stop`); producers can keep writing
//! to the source meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::error::{BrokerError, Result};
use crate::group::{CommittedOffset, OffsetToCommit};
use crate::metadata::{MetadataCommand, Migration};
use crate::record_batch::{for_each_record, StoredRecord};

pub const HEADER_TOPIC: &str = "sluice.source.topic";
pub const HEADER_PARTITION: &str = "sluice.source.partition";
pub const HEADER_OFFSET: &str = "sluice.source.offset";

/// Bytes read from one source partition per round.
const READ_BYTES: usize = 512 * 1024;
/// Records per batch appended to the new topic.
const BATCH_RECORDS: usize = 2000;
/// How often the checkpoint moves (bounding the scan after a restart).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// How long an idle forwarder waits for new data before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// The member id the forwarder's commits show.
pub const COMMITTER: &str = "sluice-migrate";

/// The forwarders running in this broker, by source topic.
#[derive(Default)]
pub struct Forwarders {
    running: Mutex<HashMap<String, Arc<Progress>>>,
}

#[derive(Default)]
pub struct Progress {
    forwarded: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Forwarders {
    fn get(&self, from: &str) -> Option<Arc<Progress>> {
        self.lock().get(from).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Progress>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A migration's progress, as `--status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationStatus {
    pub group: String,
    pub from: String,
    pub to: String,
    pub started_ms: i64,
    pub running: bool,
    /// Records forwarded by this broker process since it started.
    pub forwarded: u64,
    pub last_error: Option<String>,
    /// Per source partition: (partition, committed offset, end offset).
    pub source: Vec<(i32, i64, i64)>,
    /// Per partition of the new topic: (partition, end offset).
    pub target: Vec<(i32, i64)>,
}

/// Starts migrating `group`'s backlog on `from` into `to` (created with
/// `partitions` partitions and `from`'s configs unless it exists).
pub fn start(
    broker: &Arc<Broker>,
    group: &str,
    from: &str,
    to: &str,
    partitions: i32,
) -> Result<Migration> {
    let invalid = |why: String| Err(BrokerError::InvalidRequest(why));
    if from == to {
        return invalid("the source and the new topic are the same".into());
    }
    if crate::group::is_internal_topic(from) || crate::group::is_internal_topic(to) {
        return invalid("internal topics cannot be migrated".into());
    }
    if group.is_empty() {
        return Err(BrokerError::InvalidGroupId("the group id is empty".into()));
    }
    let source = broker.topic(from)?;
    if broker.groups.has_members_on(group, from) {
        return invalid(format!(
            "group '{group}' has members consuming '{from}': stop them first, \
             then consume '{to}' once the migration runs"
        ));
    }
    let target = match broker.topic(to) {
        Ok(existing) => {
            if existing.partitions.len() as i32 != partitions {
                return invalid(format!(
                    "topic '{to}' exists with {} partitions, not {partitions}",
                    existing.partitions.len()
                ));
            }
            existing
        }
        Err(BrokerError::UnknownTopicOrPartition) => {
            broker.create_topic(to, partitions, 1, source.configs.clone())?
        }
        Err(e) => return Err(e),
    };
    let checkpoint = (0..target.partitions.len() as i32)
        .map(|q| (q, end_offset(broker, to, q)))
        .collect();
    let migration = Migration {
        group: group.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        started_ms: now_ms(),
        checkpoint,
    };
    broker.apply_metadata(MetadataCommand::StartMigration {
        migration: migration.clone(),
    })?;
    info!(group, from, to, partitions, "migration started");
    spawn(broker, from);
    Ok(migration)
}

/// Stops a migration; its forwarder ends after its current round.
pub fn stop(broker: &Broker, from: &str) -> Result<()> {
    broker.apply_metadata(MetadataCommand::StopMigration {
        from: from.to_string(),
    })?;
    info!(from, "migration stopped");
    Ok(())
}

/// Starts the forwarder of every migration in the metadata (after a
/// restart).
pub fn resume_all(broker: &Arc<Broker>) {
    for from in broker.state().migrations.keys() {
        spawn(broker, from);
    }
}

pub fn status(broker: &Broker, from: &str) -> Result<MigrationStatus> {
    let migration = broker
        .state()
        .migrations
        .get(from)
        .cloned()
        .ok_or_else(|| BrokerError::InvalidRequest(format!("no migration of topic '{from}'")))?;
    let committed = committed_offsets(broker, &migration)?;
    let source = broker
        .topic_partitions(from)
        .iter()
        .map(|p| {
            let start = p.log_start_offset();
            let at = committed.get(&p.index).copied().unwrap_or(start);
            (p.index, at, p.high_watermark())
        })
        .collect();
    let target = broker
        .topic_partitions(&migration.to)
        .iter()
        .map(|p| (p.index, p.high_watermark()))
        .collect();
    let progress = broker.migrations.get(from);
    Ok(MigrationStatus {
        group: migration.group,
        from: migration.from,
        to: migration.to,
        started_ms: migration.started_ms,
        running: progress.is_some(),
        forwarded: progress
            .as_ref()
            .map_or(0, |p| p.forwarded.load(Ordering::Relaxed)),
        last_error: progress.and_then(|p| p.last_error.lock().ok().and_then(|e| e.clone())),
        source,
        target,
    })
}

fn spawn(broker: &Arc<Broker>, from: &str) {
    let progress = {
        let mut running = broker.migrations.lock();
        if running.contains_key(from) {
            return;
        }
        let progress = Arc::new(Progress::default());
        running.insert(from.to_string(), Arc::clone(&progress));
        progress
    };
    let weak = Arc::downgrade(broker);
    let from = from.to_string();
    tokio::spawn(async move {
        run(&weak, &from, &progress).await;
        if let Some(broker) = weak.upgrade() {
            broker.migrations.lock().remove(&from);
        }
    });
}

/// The forwarder: resumes, then forwards rounds until the migration is
/// stopped or the broker goes away.
async fn run(broker: &Weak<Broker>, from: &str, progress: &Progress) {
    let mut forwarder: Option<Forwarder> = None;
    loop {
        let Some(b) = broker.upgrade() else {
            return;
        };
        let Some(migration) = b.state().migrations.get(from).cloned() else {
            return;
        };
        // Stopped and started again meanwhile: begin afresh.
        if forwarder.as_ref().is_some_and(|f| {
            f.migration.started_ms != migration.started_ms || f.migration.to != migration.to
        }) {
            forwarder = None;
        }
        let step = match forwarder.as_mut() {
            None => Forwarder::resume(&b, migration).map(|f| {
                forwarder = Some(f);
                true
            }),
            Some(f) => f.round(&b, progress).await,
        };
        drop(b);
        match step {
            Ok(true) => {
                if let Ok(mut e) = progress.last_error.lock() {
                    *e = None;
                }
            }
            Ok(false) => tokio::time::sleep(IDLE_WAIT).await,
            Err(e) => {
                warn!(from, error = %e, "migration round failed; retrying");
                if let Ok(mut last) = progress.last_error.lock() {
                    *last = Some(e.to_string());
                }
                // Start over from what is durable and committed.
                forwarder = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

struct Forwarder {
    migration: Migration,
    /// Next source offset to forward, per source partition.
    next: BTreeMap<i32, i64>,
    /// Source offsets found already forwarded (after the checkpoint) and
    /// not yet passed, per source partition.
    already: BTreeMap<i32, BTreeSet<i64>>,
    round_robin: usize,
    last_checkpoint: Instant,
}

impl Forwarder {
    /// Where to go on from: the group's committed offsets, and the origins
    /// of what the new topic holds after the checkpoint.
    fn resume(broker: &Broker, migration: Migration) -> Result<Forwarder> {
        let committed = committed_offsets(broker, &migration)?;
        let mut next = BTreeMap::new();
        for p in broker.topic_partitions(&migration.from) {
            let start = p.log_start_offset();
            next.insert(
                p.index,
                committed.get(&p.index).copied().unwrap_or(start).max(start),
            );
        }
        let mut already: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
        let mut found = 0usize;
        for q in broker.topic_partitions(&migration.to) {
            let mut offset = migration
                .checkpoint
                .get(&q.index)
                .copied()
                .unwrap_or(0)
                .max(q.log_start_offset());
            let end = q.high_watermark();
            while offset < end {
                let bytes = read(&q, offset)?;
                if bytes.is_empty() {
                    break;
                }
                offset = for_each_record(&bytes, offset, |_, record| {
                    if let Some((p, s)) = origin(&record, &migration.from) {
                        if next.get(&p).is_some_and(|n| s >= *n) {
                            already.entry(p).or_default().insert(s);
                            found += 1;
                        }
                    }
                })?;
            }
        }
        info!(
            from = %migration.from,
            to = %migration.to,
            already_forwarded = found,
            "migration resumed"
        );
        Ok(Forwarder {
            migration,
            next,
            already,
            round_robin: 0,
            last_checkpoint: Instant::now(),
        })
    }

    /// Forwards one round from every source partition. True when
    /// something moved.
    async fn round(&mut self, broker: &Broker, progress: &Progress) -> Result<bool> {
        let target_partitions = broker.topic_partitions(&self.migration.to);
        if target_partitions.is_empty() {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        let width = target_partitions.len();
        let mut outgoing: Vec<Vec<Record>> = vec![Vec::new(); width];
        let mut advanced: BTreeMap<i32, i64> = BTreeMap::new();
        let from = self.migration.from.clone();
        for p in broker.topic_partitions(&from) {
            let start = p.log_start_offset();
            let next = self.next.entry(p.index).or_insert(start);
            if *next < start {
                warn!(from = %from, partition = p.index, lost_from = *next, to = start,
                    "retention deleted records before they were forwarded");
                *next = start;
            }
            if *next >= p.high_watermark() {
                continue;
            }
            let bytes = read(&p, *next)?;
            let first = *next;
            let skip = self.already.get_mut(&p.index);
            let mut skip = skip;
            let mut round_robin = self.round_robin;
            let end = for_each_record(&bytes, first, |offset, record| {
                if let Some(set) = skip.as_deref_mut() {
                    if set.remove(&offset) {
                        return;
                    }
                }
                let q = match record.key {
                    Some(key) => {
                        sluice_storage::murmur2::partition_for_key(key, width as i32) as usize
                    }
                    None => {
                        round_robin = round_robin.wrapping_add(1);
                        round_robin % width
                    }
                };
                outgoing[q].push(forwarded(&record, &from, p.index, offset));
            })?;
            self.round_robin = round_robin;
            if end > first {
                self.next.insert(p.index, end);
                advanced.insert(p.index, end);
            }
        }
        self.already.retain(|_, set| !set.is_empty());
        if advanced.is_empty() {
            return Ok(false);
        }
        let mut count = 0u64;
        for (q, records) in outgoing.into_iter().enumerate() {
            let Some(partition) = target_partitions.get(q) else {
                continue;
            };
            for chunk in records.chunks(BATCH_RECORDS) {
                let info =
                    partition.append(crate::record_batch::encode(chunk.to_vec())?, now_ms())?;
                broker
                    .commit_append(partition, info.last_offset + 1)
                    .await?;
                count += chunk.len() as u64;
            }
        }
        // Only once the records are durable does the group move past them.
        let offsets = advanced
            .iter()
            .map(|(p, offset)| OffsetToCommit {
                topic: from.clone(),
                partition: *p,
                value: CommittedOffset {
                    offset: *offset,
                    leader_epoch: -1,
                    metadata: Some(format!("forwarded to {}", self.migration.to)),
                    commit_timestamp_ms: now_ms(),
                },
            })
            .collect();
        let results = broker
            .groups
            .commit_for_broker(broker, &self.migration.group, offsets)
            .await?;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(e);
        }
        progress.forwarded.fetch_add(count, Ordering::Relaxed);
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint(broker)?;
        }
        Ok(true)
    }

    /// Records where the new topic ends now that everything forwarded so
    /// far is committed.
    fn checkpoint(&mut self, broker: &Broker) -> Result<()> {
        let checkpoint: BTreeMap<i32, i64> = broker
            .topic_partitions(&self.migration.to)
            .iter()
            .map(|q| (q.index, q.high_watermark()))
            .collect();
        broker.apply_metadata(MetadataCommand::CheckpointMigration {
            from: self.migration.from.clone(),
            checkpoint: checkpoint.clone(),
        })?;
        self.migration.checkpoint = checkpoint;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

fn committed_offsets(broker: &Broker, migration: &Migration) -> Result<BTreeMap<i32, i64>> {
    let fetched = broker
        .groups
        .fetch_offsets(&migration.group, None)?
        .into_iter()
        .filter(|(topic, _)| *topic == migration.from)
        .flat_map(|(_, partitions)| partitions)
        .filter_map(|(p, c)| c.map(|c| (p, c.offset)))
        .collect();
    Ok(fetched)
}

fn end_offset(broker: &Broker, topic: &str, partition: i32) -> i64 {
    broker
        .partition(topic, partition)
        .map_or(0, |p| p.high_watermark())
}

/// Up to READ_BYTES of whole batches from `offset`, never past the high
/// watermark.
fn read(partition: &crate::partition::Partition, offset: i64) -> Result<Vec<u8>> {
    crate::blocking::disk_work(|| match partition.read(offset, READ_BYTES, true)? {
        Some(region) => region
            .to_vec()
            .map_err(|e| BrokerError::Storage(e.to_string())),
        None => Ok(Vec::new()),
    })
}

/// The (source partition, source offset) of a forwarded record from
/// `from`.
fn origin(record: &StoredRecord<'_>, from: &str) -> Option<(i32, i64)> {
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(k, _)| *k == name.as_bytes())
            .and_then(|(_, v)| *v)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    if header(HEADER_TOPIC)? != from {
        return None;
    }
    Some((
        header(HEADER_PARTITION)?.parse().ok()?,
        header(HEADER_OFFSET)?.parse().ok()?,
    ))
}

/// The record as forwarded: its key, value, timestamp and headers, plus
/// its origin.
fn forwarded(record: &StoredRecord<'_>, from: &str, partition: i32, offset: i64) -> Record {
    let mut headers: IndexMap<StrBytes, Option<Bytes>> = IndexMap::new();
    for (key, value) in &record.headers {
        if let Ok(key) = std::str::from_utf8(key) {
            headers.insert(
                StrBytes::from_string(key.to_string()),
                value.map(Bytes::copy_from_slice),
            );
        }
    }
    for (name, value) in [
        (HEADER_TOPIC, from.to_string()),
        (HEADER_PARTITION, partition.to_string()),
        (HEADER_OFFSET, offset.to_string()),
    ] {
        headers.insert(StrBytes::from_static_str(name), Some(Bytes::from(value)));
    }
    crate::record_batch::record(
        record.timestamp,
        record.key.map(Bytes::copy_from_slice),
        record.value.map(Bytes::copy_from_slice),
        headers,
    )
}
