//! The group coordinator: consumer groups, under the classic protocol
//! (`classic.rs`) or the KIP-848 consumer protocol (`consumer.rs`, with
//! the server-side assignors of `assignor.rs`), and their committed
//! offsets.
//!
//! A group has one type at a time, and converts as Kafka's default
//! (bidirectional) migration policy allows. An empty group changes type
//! when a member of the other protocol joins it. A classic group with
//! members becomes a consumer group when a KIP-848 member joins it, if it
//! uses the consumer embedded protocol: its members stay, as classic
//! members of the consumer group (`consumer/classic_members.rs`), keeping
//! their partitions until the new assignment moves them. A consumer group
//! whose last KIP-848 member leaves, with classic members left, becomes a
//! classic group again and rebalances.
//!
//! Offsets are durable in the internal topic `__consumer_offsets`, a log
//! like any other (same fsync policy, same crash recovery). A group lives
//! on the partition Kafka would choose (`records::partition_for`), so that
//! replication can later move coordinators with partition leadership. On
//! start the coordinator replays every partition of the topic; the latest
//! value of each key wins and tombstones delete.
//!
//! Compaction keeps `__consumer_offsets` from growing with every commit
//! (Kafka runs its log cleaner on it). Once a partition has taken more
//! records than it holds live keys (and at least
//! `offsets_compaction_min_records`), the coordinator, with appends to that
//! partition held off, rolls a new segment, writes every live record of its
//! groups into it again, fsyncs it whatever the fsync policy, and only then
//! deletes the older segments. A crash at any point leaves either the old
//! records, or the old ones followed by the same values rewritten, and a
//! replay of either gives the same state.
//!
//! Each group's state is stored too, when a new generation becomes stable
//! and when the group empties, so that after a restart (kill -9 included)
//! its members go on with the same generation and assignment.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod consumer_protocol;
pub mod rates;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Record;
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::error::{BrokerError, Result};
use crate::metadata::ClusterState;
use classic::{ClassicGroup, GroupLimits, GroupState, JoinReply, JoinRequest, SyncReply};
use consumer::{ConsumerGroup, ConsumerGroupView, ConsumerLimits, Heartbeat, HeartbeatReply};
pub use records::{CommittedOffset, OffsetKey};
use records::{Key, StoredGroupValue};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics the broker keeps for itself: clients may read them but not
/// produce to or delete them.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == crate::txn::TXN_STATE_TOPIC
}

/// Group ids refused: empty ones (as Kafka), and ones longer than a
/// non-flexible Kafka string can carry.
fn check_group_id(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(BrokerError::InvalidGroupId("the group id is empty".into()));
    }
    if group.len() > records::MAX_GROUP_ID_BYTES {
        return Err(BrokerError::InvalidGroupId(format!(
            "the group id is longer than {} bytes",
            records::MAX_GROUP_ID_BYTES
        )));
    }
    Ok(())
}

/// Topics as consumer groups see them: the broker's current metadata.
impl consumer::TopicView for ClusterState {
    fn topic(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        ClusterState::topic(self, name).map(|t| (t.id, t.partitions.len() as i32))
    }

    fn name_of(&self, id: uuid::Uuid) -> Option<String> {
        self.topic_by_id(id).map(|t| t.name.clone())
    }

    fn names(&self) -> Vec<String> {
        self.topics
            .keys()
            .filter(|name| !is_internal_topic(name))
            .cloned()
            .collect()
    }
}

/// Offsets by (topic, partition), each with the `__consumer_offsets`
/// offset of the record that stored it.
type StoredOffsets = BTreeMap<(String, i32), (i64, CommittedOffset)>;

/// A group and its offsets.
#[derive(Debug)]
struct GroupEntry {
    classic: ClassicGroup,
    /// Set while the group is a consumer group of the KIP-848 protocol
    /// (then `classic` is empty).
    consumer: Option<ConsumerGroup>,
    /// The consumer group changed since `stored` was written.
    consumer_dirty: bool,
    /// The group record last written to (or loaded from)
    /// `__consumer_offsets`; compaction writes it again.
    stored: Option<StoredGroupValue>,
    /// Committed offsets, each with the `__consumer_offsets` offset that
    /// stored it, so that commits completing out of order keep the latest.
    offsets: BTreeMap<(String, i32), (i64, CommittedOffset)>,
    /// Recent commits per partition, for consumption rates.
    history: HashMap<(String, i32), rates::CommitHistory>,
    /// Offsets committed in open transactions (TxnOffsetCommit), by
    /// producer id: they apply when the transaction commits and vanish when
    /// it aborts. Each with the `__consumer_offsets` offset that stored it.
    pending_txn: HashMap<i64, StoredOffsets>,
    /// The generation last stored, and whether it had members: the group
    /// record is written again when a new generation becomes stable or the
    /// group empties.
    stored_generation: i32,
    stored_members: bool,
}

impl GroupEntry {
    fn new(id: &str) -> GroupEntry {
        GroupEntry {
            classic: ClassicGroup::new(id),
            consumer: None,
            consumer_dirty: false,
            stored: None,
            offsets: BTreeMap::new(),
            history: HashMap::new(),
            pending_txn: HashMap::new(),
            stored_generation: 0,
            stored_members: false,
        }
    }

    /// The group's record, if its stored form is out of date.
    fn record_due(&mut self) -> Option<StoredGroupValue> {
        if let Some(group) = &self.consumer {
            if !std::mem::take(&mut self.consumer_dirty) {
                return None;
            }
            let stored = StoredGroupValue::Consumer(group.stored());
            if self.stored.as_ref() == Some(&stored) {
                return None;
            }
            self.stored = Some(stored.clone());
            return Some(stored);
        }
        let state = self.classic.state();
        let generation = self.classic.generation();
        let due = match state {
            GroupState::Stable => generation != self.stored_generation || !self.stored_members,
            GroupState::Empty => self.stored_members,
            _ => false,
        };
        if !due {
            return None;
        }
        self.stored_generation = generation;
        self.stored_members = state == GroupState::Stable;
        let stored = StoredGroupValue::Classic(self.classic.stored());
        self.stored = Some(stored.clone());
        Some(stored)
    }

    /// Neither members nor offsets nor a stored record with members: the
    /// group can be forgotten.
    fn is_forgettable(&self) -> bool {
        let consumer_idle = self.consumer.as_ref().is_none_or(ConsumerGroup::is_empty)
            && !matches!(&self.stored, Some(StoredGroupValue::Consumer(s)) if !s.members.is_empty());
        self.classic.is_idle()
            && consumer_idle
            && self.offsets.is_empty()
            && self.pending_txn.is_empty()
            && !self.stored_members
    }

    /// No member of either protocol.
    fn has_no_members(&self) -> bool {
        self.classic.is_empty() && self.consumer.as_ref().is_none_or(ConsumerGroup::is_empty)
    }

    fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else {
            "classic"
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name for the group's type.
    pub state: &'static str,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<classic::MemberView>,
}

/// A partition's recent consumption rate.
#[derive(Debug, Clone)]
pub struct PartitionRate {
    pub topic: String,
    pub partition: i32,
    pub rate: rates::Rate,
}

/// Committed offsets by topic, then partition (None: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub value: CommittedOffset,
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, GroupEntry>>,
    limits: GroupLimits,
    consumer_limits: ConsumerLimits,
    offsets_partitions: i32,
    metadata_max_bytes: usize,
    max_groups: usize,
    /// One per partition of `__consumer_offsets`: appends hold it shared
    /// from their append until their records are applied, compaction holds
    /// it alone, so that its snapshot misses no record it deletes.
    partition_locks: Vec<tokio::sync::RwLock<()>>,
    /// Records each partition took since it was loaded or compacted.
    appended: Vec<AtomicUsize>,
    compaction_min_records: usize,
}

/// Who is committing: a member of a given generation, or a simple
/// (generation -1, no member) commit.
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
}

impl GroupCoordinator {
    pub fn new(config: &crate::BrokerConfig) -> GroupCoordinator {
        GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            limits: GroupLimits {
                min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
                max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
                initial_rebalance_delay: Duration::from_millis(
                    config.group_initial_rebalance_delay_ms,
                ),
                max_size: config.group_max_size,
            },
            consumer_limits: ConsumerLimits {
                session_timeout: Duration::from_millis(config.group_consumer_session_timeout_ms),
                heartbeat_interval: Duration::from_millis(
                    config.group_consumer_heartbeat_interval_ms,
                ),
                reconcile_heartbeat_interval: Duration::from_millis(
                    config.group_consumer_reconcile_heartbeat_interval_ms,
                ),
                max_size: config.group_max_size,
            },
            offsets_partitions: config.offsets_topic_partitions,
            metadata_max_bytes: config.offset_metadata_max_bytes,
            max_groups: config.max_groups,
            partition_locks: (0..config.offsets_topic_partitions.max(1))
                .map(|_| tokio::sync::RwLock::new(()))
                .collect(),
            appended: (0..config.offsets_topic_partitions.max(1))
                .map(|_| AtomicUsize::new(0))
                .collect(),
            compaction_min_records: config.offsets_compaction_min_records,
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, GroupEntry>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rebuilds the offsets from `__consumer_offsets`, if it exists.
    pub fn load(&self, broker: &Broker) {
        let mut groups = self.groups();
        let mut applied = 0usize;
        broker.replay_topic(OFFSETS_TOPIC, |index, header, batch| {
            let count = if header.is_control() {
                let control = sluice_storage::producers::ControlType::of_batch(batch, header);
                end_transaction(&mut groups, header.producer_id, control);
                0
            } else if header.is_transactional() {
                apply_transactional_batch(&mut groups, batch, header.producer_id)
            } else {
                apply_batch(&mut groups, batch, &self.consumer_limits)
            };
            applied += count;
            if let Some(n) = self.appended.get(index as usize) {
                n.fetch_add(count, Ordering::Relaxed);
            }
        });
        if applied > 0 {
            info!(
                records = applied,
                groups = groups.len(),
                "loaded committed offsets"
            );
        }
    }

    /// Makes sure `__consumer_offsets` exists (Kafka creates it on first use).
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> Result<()> {
        if broker.state().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        // Time or size retention would delete commits that are still the
        // latest for their partition: the coordinator compacts instead.
        let configs = BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
        ]);
        match broker.create_topic(OFFSETS_TOPIC, self.offsets_partitions, 1, configs) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn join(
        &self,
        group: &str,
        request: JoinRequest,
        topics: &ClusterState,
    ) -> Result<JoinReply> {
        check_group_id(group)?;
        let mut groups = self.groups();
        self.check_room_for(&groups, group)?;
        let entry = groups
            .entry(group.to_string())
            .or_insert_with(|| GroupEntry::new(group));
        let now = Instant::now();
        if let Some(consumer) = &mut entry.consumer {
            if !consumer.is_empty() {
                classic::check_session_timeout(&request, &self.limits)?;
                if !consumer.tick(now).is_empty() {
                    entry.consumer_dirty = true;
                }
                let outcome = consumer.classic_join(request, &self.consumer_limits, topics, now);
                if outcome.is_ok() {
                    entry.consumer_dirty = true;
                }
                return Ok(answered(outcome));
            }
            info!(group, "empty consumer group becomes a classic group");
            entry.consumer = None;
        }
        Ok(entry.classic.join(request, &self.limits, now))
    }

    /// ConsumerGroupHeartbeat: the one call of the KIP-848 protocol.
    pub fn consumer_heartbeat(
        &self,
        group: &str,
        request: Heartbeat,
        version: i16,
        topics: &ClusterState,
    ) -> Result<HeartbeatReply> {
        check_group_id(group)?;
        consumer::validate(&request, version)?;
        let mut groups = self.groups();
        let joining = request.member_epoch == consumer::JOIN_EPOCH;
        if joining {
            self.check_room_for(&groups, group)?;
        }
        let entry = match groups.get_mut(group) {
            Some(entry) => entry,
            None if joining => groups
                .entry(group.to_string())
                .or_insert_with(|| GroupEntry::new(group)),
            None => return Err(BrokerError::UnknownMemberId),
        };
        let now = Instant::now();
        let created = entry.consumer.is_none() && entry.classic.is_empty();
        if entry.consumer.is_none() {
            if !joining {
                return Err(BrokerError::UnknownMemberId);
            }
            if created {
                entry.consumer = Some(ConsumerGroup::new(group));
            } else {
                self.upgrade(entry, topics, now)?;
            }
        }
        let consumer = entry
            .consumer
            .as_mut()
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        // As for classic heartbeats: expired members go first.
        if !consumer.tick(now).is_empty() {
            entry.consumer_dirty = true;
        }
        let reply = consumer.heartbeat(request, version, &self.consumer_limits, topics, now);
        match &reply {
            Ok(_) => entry.consumer_dirty = true,
            // A refused first heartbeat leaves no group behind (nor a
            // record to store): `tick` forgets the empty entry.
            Err(_) if created => entry.consumer = None,
            Err(_) => {}
        }
        self.maybe_downgrade(entry, topics, now);
        reply
    }

    /// A classic group with members taking its first KIP-848 member
    /// becomes a consumer group, its members kept as classic members.
    fn upgrade(&self, entry: &mut GroupEntry, topics: &ClusterState, now: Instant) -> Result<()> {
        let group = entry.classic.id.clone();
        let stored = entry.classic.stored();
        if stored.members.len() > self.consumer_limits.max_size {
            return Err(BrokerError::GroupMaxSizeReached(
                self.consumer_limits.max_size,
            ));
        }
        let Some(consumer) = ConsumerGroup::from_classic(&group, &stored, topics, now) else {
            return Err(BrokerError::InconsistentGroupType(format!(
                "group {group} is a classic group whose members do not all use the consumer \
                 embedded protocol; a consumer-protocol member cannot join it"
            )));
        };
        info!(
            group,
            members = stored.members.len(),
            generation = stored.generation,
            "classic group becomes a consumer group; its members stay as classic members"
        );
        // Members waiting in a rebalance join again, now in the consumer group.
        entry
            .classic
            .fail_pending(|| BrokerError::RebalanceInProgress);
        entry.classic = ClassicGroup::new(&group);
        entry.consumer = Some(consumer);
        entry.consumer_dirty = true;
        entry.stored_generation = 0;
        entry.stored_members = false;
        Ok(())
    }

    /// A consumer group left with only classic members becomes a classic
    /// group again, and rebalances so that a leader assigns.
    fn maybe_downgrade(&self, entry: &mut GroupEntry, topics: &ClusterState, now: Instant) {
        let Some(consumer) = &entry.consumer else {
            return;
        };
        if !consumer.only_classic_members() {
            return;
        }
        let Some(stored) = consumer.to_classic(topics) else {
            return;
        };
        info!(
            group = %consumer.id,
            members = stored.members.len(),
            "consumer group has only classic members left; it becomes a classic group"
        );
        let mut classic = ClassicGroup::restore(&consumer.id, stored, now);
        classic.start_rebalance(&self.limits, now);
        entry.classic = classic;
        entry.consumer = None;
        entry.consumer_dirty = false;
        // Store the classic group once it is stable (or empty).
        entry.stored_generation = -1;
        entry.stored_members = true;
    }

    /// Each partition's recent consumption rate, from the group's commits.
    pub fn consumption_rates(&self, group: &str, now_ms: i64) -> Vec<PartitionRate> {
        let groups = self.groups();
        let Some(entry) = groups.get(group) else {
            return Vec::new();
        };
        let mut out: Vec<PartitionRate> = entry
            .history
            .iter()
            .filter_map(|((topic, partition), history)| {
                history.rate(now_ms).map(|rate| PartitionRate {
                    topic: topic.clone(),
                    partition: *partition,
                    rate,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// ConsumerGroupDescribe: None when the group is not a consumer group.
    pub fn describe_consumer_group(&self, group: &str) -> Option<ConsumerGroupView> {
        let groups = self.groups();
        groups
            .get(group)?
            .consumer
            .as_ref()
            .map(ConsumerGroup::view)
    }

    pub fn sync(
        &self,
        group: &str,
        member: &Committer,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        topics: &ClusterState,
    ) -> Result<SyncReply> {
        check_group_id(group)?;
        let mut groups = self.groups();
        let entry = groups.get_mut(group).ok_or(BrokerError::UnknownMemberId)?;
        if let Some(consumer) = &mut entry.consumer {
            let assignment = consumer.classic_sync(
                &member.member_id,
                member.instance_id.as_deref(),
                member.generation,
                protocol,
                topics,
                Instant::now(),
            );
            return Ok(answered(assignment));
        }
        Ok(entry.classic.sync(
            &member.member_id,
            member.instance_id.as_deref(),
            member.generation,
            protocol,
            assignments,
        ))
    }

    pub fn heartbeat(&self, group: &str, member: &Committer) -> Result<()> {
        check_group_id(group)?;
        let mut groups = self.groups();
        let entry = groups.get_mut(group).ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        if let Some(consumer) = &mut entry.consumer {
            if !consumer.tick(now).is_empty() {
                entry.consumer_dirty = true;
            }
            return consumer.classic_heartbeat(
                &member.member_id,
                member.instance_id.as_deref(),
                member.generation,
                now,
            );
        }
        // Deadlines that passed since the last tick apply first, so that a
        // member that expired a moment ago starts the rebalance now rather
        // than at this member's next heartbeat.
        entry.classic.tick(&self.limits, now);
        entry.classic.heartbeat(
            &member.member_id,
            member.instance_id.as_deref(),
            member.generation,
            now,
        )
    }

    pub fn leave(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        topics: &ClusterState,
    ) -> Result<()> {
        check_group_id(group)?;
        let mut groups = self.groups();
        let entry = groups.get_mut(group).ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        if let Some(consumer) = &mut entry.consumer {
            let left = consumer.classic_leave(member_id, instance_id);
            if left.is_ok() {
                entry.consumer_dirty = true;
                self.maybe_downgrade(entry, topics, now);
            }
            return left.map(|_| ());
        }
        entry
            .classic
            .leave(member_id, instance_id, &self.limits, now)
    }

    /// Stores the record of every group whose stable generation or
    /// emptiness changed since it was last stored, so that a restarted
    /// broker brings the group back as it was.
    pub async fn store_group_changes(&self, broker: &Broker) {
        let due: Vec<(String, StoredGroupValue)> = {
            let mut groups = self.groups();
            groups
                .iter_mut()
                .filter_map(|(id, e)| e.record_due().map(|g| (id.clone(), g)))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        if let Err(e) = self.ensure_offsets_topic(broker) {
            warn!(error = %e, "cannot store group state");
            return;
        }
        for (group, stored) in due {
            let record = vec![(Key::Group(group.clone()), Some(GroupRecord::Group(stored)))];
            if let Err(e) = self.append_records(broker, &group, record).await {
                warn!(group = %group, error = %e, "cannot store group state");
            }
        }
    }

    /// Applies timeouts to every group, and forgets groups with neither
    /// members nor offsets (as Kafka lets them die).
    pub fn tick(&self, topics: &ClusterState) {
        let now = Instant::now();
        let mut groups = self.groups();
        for (id, entry) in groups.iter_mut() {
            entry.classic.tick(&self.limits, now);
            if let Some(consumer) = &mut entry.consumer {
                let removed = consumer.tick(now);
                if !removed.is_empty() {
                    info!(group = %id, members = ?removed, "consumer group members expired");
                    entry.consumer_dirty = true;
                }
            }
            self.maybe_downgrade(entry, topics, now);
        }
        // A group whose stored record still lists members is kept until
        // the empty record is stored.
        groups.retain(|_, e| !e.is_forgettable());
    }

    pub fn list(&self) -> Vec<GroupListing> {
        let groups = self.groups();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|e| e.classic.state() != GroupState::Dead)
            .map(|e| match &e.consumer {
                Some(consumer) => GroupListing {
                    group_id: consumer.id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: consumer.state_name(),
                    group_type: e.group_type(),
                },
                None => GroupListing {
                    group_id: e.classic.id.clone(),
                    protocol_type: e.classic.protocol_type().unwrap_or_default().to_string(),
                    state: e.classic.state().name(),
                    group_type: e.group_type(),
                },
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups: None when the group does not exist or is not a
    /// classic group (as Kafka answers).
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let groups = self.groups();
        let entry = groups.get(group).filter(|e| e.consumer.is_none())?;
        Some(GroupDescription {
            state: entry.classic.state(),
            protocol_type: entry
                .classic
                .protocol_type()
                .unwrap_or_default()
                .to_string(),
            protocol: entry.classic.protocol().unwrap_or_default().to_string(),
            members: entry.classic.members(),
        })
    }

    /// Refuses a new group beyond `max_groups`: each one holds memory.
    fn check_room_for(&self, groups: &HashMap<String, GroupEntry>, group: &str) -> Result<()> {
        if groups.len() >= self.max_groups && !groups.contains_key(group) {
            return Err(BrokerError::PolicyViolation(format!(
                "the broker holds {} groups; max_groups is {}",
                groups.len(),
                self.max_groups
            )));
        }
        Ok(())
    }

    /// Checks that `committer` may commit for `group` now.
    fn check_committer(&self, group: &str, committer: &Committer) -> Result<()> {
        check_group_id(group)?;
        let groups = self.groups();
        self.check_room_for(&groups, group)?;
        let Some(entry) = groups.get(group) else {
            return if committer.generation < 0 {
                Ok(())
            } else {
                Err(BrokerError::IllegalGeneration(committer.generation, 0))
            };
        };
        if let Some(consumer) = &entry.consumer {
            // KIP-848: the generation field carries the member epoch.
            return if committer.generation < 0 && committer.member_id.is_empty() {
                if consumer.is_empty() {
                    Ok(())
                } else {
                    Err(BrokerError::UnknownMemberId)
                }
            } else {
                consumer.check_member_epoch(&committer.member_id, committer.generation)
            };
        }
        let classic = &entry.classic;
        match classic.state() {
            GroupState::Dead => Err(BrokerError::CoordinatorNotAvailable),
            _ if committer.generation < 0 && committer.member_id.is_empty() => {
                if classic.is_empty() {
                    Ok(())
                } else {
                    Err(BrokerError::UnknownMemberId)
                }
            }
            GroupState::CompletingRebalance => Err(BrokerError::RebalanceInProgress),
            _ if !classic.has_member(&committer.member_id) => Err(BrokerError::UnknownMemberId),
            _ if committer.generation != classic.generation() => Err(
                BrokerError::IllegalGeneration(committer.generation, classic.generation()),
            ),
            _ => Ok(()),
        }
    }

    /// Commits offsets: checks the committer, appends the records to the
    /// group's partition of `__consumer_offsets`, waits until they are
    /// durable under the fsync policy, then makes them visible. Per-offset
    /// results, in order.
    pub async fn commit(
        &self,
        broker: &Broker,
        group: &str,
        committer: &Committer,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<()>>> {
        self.check_committer(group, committer)?;
        self.commit_checked(broker, group, &committer.member_id, offsets)
            .await
    }

    /// Commits on the broker's own behalf (a topic migration's forwarder),
    /// whoever the group's members are.
    pub async fn commit_for_broker(
        &self,
        broker: &Broker,
        group: &str,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<()>>> {
        check_group_id(group)?;
        self.check_room_for(&self.groups(), group)?;
        self.commit_checked(broker, group, crate::migrate::COMMITTER, offsets)
            .await
    }

    /// Whether `group` has members that consume `topic`.
    pub fn has_members_on(&self, group: &str, topic: &str) -> bool {
        let groups = self.groups();
        let Some(entry) = groups.get(group) else {
            return false;
        };
        match &entry.consumer {
            Some(consumer) => !consumer.is_empty() && consumer.is_subscribed_to(topic),
            None => !entry.classic.is_empty() && entry.classic.is_subscribed_to(topic),
        }
    }

    /// Checks each offset (its metadata's size, its partition): a result
    /// per offset, in order, and the offsets that passed.
    fn screen_offsets(
        &self,
        broker: &Broker,
        offsets: Vec<OffsetToCommit>,
    ) -> (Vec<Result<()>>, Vec<OffsetToCommit>) {
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::new();
        for o in offsets {
            let size = o.value.metadata.as_deref().map_or(0, str::len);
            let outcome = if size > self.metadata_max_bytes {
                Err(BrokerError::OffsetMetadataTooLarge {
                    size,
                    max: self.metadata_max_bytes,
                })
            } else if broker.partition(&o.topic, o.partition).is_none() {
                Err(BrokerError::UnknownTopicOrPartition)
            } else {
                Ok(())
            };
            if outcome.is_ok() {
                accepted.push(o);
            }
            results.push(outcome);
        }
        (results, accepted)
    }

    async fn commit_checked(
        &self,
        broker: &Broker,
        group: &str,
        member_id: &str,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<()>>> {
        self.ensure_offsets_topic(broker)?;
        let (mut results, accepted) = self.screen_offsets(broker, offsets);
        if accepted.is_empty() {
            return Ok(results);
        }
        let records: Vec<(OffsetKey, Option<CommittedOffset>)> = accepted
            .into_iter()
            .map(|o| {
                let key = OffsetKey {
                    group: group.to_string(),
                    topic: o.topic,
                    partition: o.partition,
                };
                (key, Some(o.value))
            })
            .collect();
        let stored = self.append(broker, group, &records).await;
        if let Err(e) = stored {
            warn!(group, error = %e, "storing committed offsets failed");
            // Every accepted offset failed with the storage error.
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
            return Ok(results);
        }
        let now = now_ms();
        if let Some(entry) = self.groups().get_mut(group) {
            for (key, value) in &records {
                if let Some(value) = value {
                    entry
                        .history
                        .entry((key.topic.clone(), key.partition))
                        .or_default()
                        .record(now, value.offset, member_id);
                }
            }
        }
        Ok(results)
    }

    /// Appends offset records (None: a tombstone) for `group`, waits for
    /// durability, then applies them to the in-memory state.
    async fn append(
        &self,
        broker: &Broker,
        group: &str,
        records: &[(OffsetKey, Option<CommittedOffset>)],
    ) -> Result<()> {
        let records = records
            .iter()
            .map(|(k, v)| (Key::Offset(k.clone()), v.clone().map(GroupRecord::Offset)))
            .collect();
        self.append_records(broker, group, records).await
    }

    /// Appends records for `group` to its partition of `__consumer_offsets`,
    /// waits until they are durable, then applies the offsets among them
    /// to the in-memory state (group records describe state it already has).
    async fn append_records(
        &self,
        broker: &Broker,
        group: &str,
        records: Vec<(Key, Option<GroupRecord>)>,
    ) -> Result<()> {
        let index = records::partition_for(group, self.offsets_partitions);
        let partition = broker
            .partition(OFFSETS_TOPIC, index)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        let _appending = self.partition_locks[index as usize].read().await;
        let batch = encode_batch(&records)?;
        let info = partition.append(batch, now_ms())?;
        broker
            .commit_append(&partition, info.last_offset + 1)
            .await?;
        self.appended[index as usize].fetch_add(records.len(), Ordering::Relaxed);
        let mut groups = self.groups();
        let entry = groups
            .entry(group.to_string())
            .or_insert_with(|| GroupEntry::new(group));
        for (i, (key, value)) in records.into_iter().enumerate() {
            if let Key::Offset(key) = key {
                let value = match value {
                    Some(GroupRecord::Offset(v)) => Some(v),
                    _ => None,
                };
                apply_offset(entry, info.base_offset + i as i64, &key, value);
            }
        }
        Ok(())
    }

    /// OffsetFetch v9+ from a member of a consumer group carries its id
    /// and epoch, which must be current (Kafka's STALE_MEMBER_EPOCH);
    /// without them (epoch -1) anyone may read.
    pub fn check_fetcher(&self, group: &str, member_id: Option<&str>, epoch: i32) -> Result<()> {
        if epoch < 0 && member_id.is_none_or(str::is_empty) {
            return Ok(());
        }
        let groups = self.groups();
        match groups.get(group).and_then(|e| e.consumer.as_ref()) {
            Some(consumer) => consumer.check_member_epoch(member_id.unwrap_or_default(), epoch),
            None => Ok(()),
        }
    }

    /// The committed offset of each requested partition (all of the
    /// group's when `wanted` is None).
    /// Whether `group` has offsets of `topic`-`partition` in an open
    /// transaction (OffsetFetch with require_stable answers
    /// UNSTABLE_OFFSET_COMMIT for those).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let groups = self.groups();
        groups.get(group).is_some_and(|e| {
            e.pending_txn
                .values()
                .any(|p| p.contains_key(&(topic.to_string(), partition)))
        })
    }

    pub fn fetch_offsets(
        &self,
        group: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets> {
        check_group_id(group)?;
        let groups = self.groups();
        let entry = groups.get(group);
        let lookup = |topic: &str, partition: i32| {
            entry
                .and_then(|e| e.offsets.get(&(topic.to_string(), partition)))
                .map(|(_, v)| v.clone())
        };
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, lookup(&topic, p)))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                if let Some(e) = entry {
                    for ((topic, partition), (_, value)) in &e.offsets {
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*partition, Some(value.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// OffsetDelete: removes committed offsets of topics the group does not
    /// subscribe to. Per-partition results, in order.
    pub async fn delete_offsets(
        &self,
        broker: &Broker,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<()>>> {
        check_group_id(group)?;
        let (results, keys) = {
            let groups = self.groups();
            let entry = groups.get(group).ok_or(BrokerError::GroupIdNotFound)?;
            if entry.classic.state() == GroupState::Dead {
                return Err(BrokerError::GroupIdNotFound);
            }
            let mut results = Vec::new();
            let mut keys = Vec::new();
            for (topic, partition) in partitions {
                let subscribed = match &entry.consumer {
                    Some(consumer) => consumer.is_subscribed_to(&topic),
                    None => entry.classic.is_subscribed_to(&topic),
                };
                if subscribed {
                    results.push(Err(BrokerError::GroupSubscribedToTopic(topic)));
                    continue;
                }
                if entry.offsets.contains_key(&(topic.clone(), partition)) {
                    keys.push(OffsetKey {
                        group: group.to_string(),
                        topic,
                        partition,
                    });
                }
                results.push(Ok(()));
            }
            (results, keys)
        };
        if !keys.is_empty() {
            let tombstones: Vec<_> = keys.into_iter().map(|k| (k, None)).collect();
            self.append(broker, group, &tombstones).await?;
        }
        Ok(results)
    }

    /// Expires the committed offsets of empty groups that were last
    /// committed more than `retention_ms` ago (Kafka's
    /// offsets.retention.minutes, KIP-211: a group with members keeps its
    /// offsets). Returns how many offsets expired.
    pub async fn expire_offsets(&self, broker: &Broker, retention_ms: i64, now_ms: i64) -> usize {
        let expired: Vec<(String, Vec<OffsetKey>)> = {
            let groups = self.groups();
            groups
                .iter()
                .filter(|(_, e)| e.classic.is_idle() && e.has_no_members())
                .filter_map(|(group, e)| {
                    let keys: Vec<OffsetKey> = e
                        .offsets
                        .iter()
                        .filter(|(_, (_, v))| now_ms - v.commit_timestamp_ms > retention_ms)
                        .map(|((topic, partition), _)| OffsetKey {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        })
                        .collect();
                    (!keys.is_empty()).then(|| (group.clone(), keys))
                })
                .collect()
        };
        let mut count = 0;
        for (group, keys) in expired {
            let n = keys.len();
            let tombstones: Vec<_> = keys.into_iter().map(|k| (k, None)).collect();
            match self.append(broker, &group, &tombstones).await {
                Ok(()) => {
                    info!(group = %group, offsets = n, "expired committed offsets of an empty group");
                    count += n;
                }
                Err(e) => warn!(group = %group, error = %e, "cannot expire committed offsets"),
            }
        }
        count
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete_group(&self, broker: &Broker, group: &str) -> Result<()> {
        check_group_id(group)?;
        let keys: Vec<OffsetKey> = {
            let groups = self.groups();
            let entry = groups.get(group).ok_or(BrokerError::GroupIdNotFound)?;
            if entry.classic.state() == GroupState::Dead {
                return Err(BrokerError::GroupIdNotFound);
            }
            if !entry.has_no_members() {
                return Err(BrokerError::NonEmptyGroup);
            }
            entry
                .offsets
                .keys()
                .map(|(topic, partition)| OffsetKey {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect()
        };
        let mut tombstones: Vec<(Key, Option<GroupRecord>)> =
            keys.into_iter().map(|k| (Key::Offset(k), None)).collect();
        tombstones.push((Key::Group(group.to_string()), None));
        self.ensure_offsets_topic(broker)?;
        self.append_records(broker, group, tombstones).await?;
        let mut groups = self.groups();
        if let Some(mut entry) = groups.remove(group) {
            entry.classic.mark_dead();
        }
        Ok(())
    }
}

impl GroupCoordinator {
    /// Compacts every partition of `__consumer_offsets` that took more
    /// records than it holds live ones, and at least
    /// `offsets_compaction_min_records`. Returns how many were compacted.
    pub async fn compact_offsets(&self, broker: &Broker) -> usize {
        let mut compacted = 0;
        for index in 0..self.offsets_partitions {
            let appended = self.appended[index as usize].load(Ordering::Relaxed);
            if appended < self.compaction_min_records.max(1) {
                continue;
            }
            if self.live_records(index).len() >= appended {
                continue;
            }
            if self.has_pending_transactions(index) {
                // Their records live only in the segments compaction
                // would delete; wait until the transactions end.
                continue;
            }
            match self.compact_partition(broker, index).await {
                Ok(()) => compacted += 1,
                Err(e) => warn!(partition = index, error = %e, "compacting {OFFSETS_TOPIC} failed"),
            }
        }
        compacted
    }

    /// Whether a group on partition `index` has offsets in an open
    /// transaction.
    fn has_pending_transactions(&self, index: i32) -> bool {
        self.groups().iter().any(|(id, e)| {
            !e.pending_txn.is_empty()
                && records::partition_for(id, self.offsets_partitions) == index
        })
    }

    /// The partition of `__consumer_offsets` that holds `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        records::partition_for(group, self.offsets_partitions)
    }

    /// TxnOffsetCommit: offsets committed in `producer_id`'s open
    /// transaction, stored as a transactional batch of that producer in the
    /// group's partition (the transaction's marker there ends them), and
    /// held pending until the transaction ends. The caller has checked the
    /// transaction. Per-offset results, in order.
    pub async fn commit_transactional(
        &self,
        broker: &Broker,
        group: &str,
        committer: &Committer,
        producer: (i64, i16),
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<()>>> {
        check_group_id(group)?;
        // A producer that names no member (generation -1) may commit for
        // any group, as Kafka lets the old send_offsets_to_transaction.
        if committer.generation >= 0 || !committer.member_id.is_empty() {
            self.check_committer(group, committer)?;
        }
        self.ensure_offsets_topic(broker)?;
        let (results, accepted) = self.screen_offsets(broker, offsets);
        if accepted.is_empty() {
            return Ok(results);
        }
        let index = self.partition_of(group);
        let partition = broker
            .partition(OFFSETS_TOPIC, index)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        let records: Vec<(Key, Option<GroupRecord>)> = accepted
            .iter()
            .map(|o| {
                let key = OffsetKey {
                    group: group.to_string(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                };
                (Key::Offset(key), Some(GroupRecord::Offset(o.value.clone())))
            })
            .collect();
        let _appending = self.partition_locks[index as usize].read().await;
        let batch = encode_transactional_batch(&records, producer)?;
        let info = partition.append(batch, now_ms())?;
        broker
            .commit_append(&partition, info.last_offset + 1)
            .await?;
        let mut groups = self.groups();
        let entry = groups
            .entry(group.to_string())
            .or_insert_with(|| GroupEntry::new(group));
        let pending = entry.pending_txn.entry(producer.0).or_default();
        for (i, o) in accepted.into_iter().enumerate() {
            pending.insert(
                (o.topic, o.partition),
                (info.base_offset + i as i64, o.value),
            );
        }
        Ok(results)
    }

    /// `producer_id`'s transaction ended (its marker is in partition
    /// `index` of `__consumer_offsets`): its offsets there apply, or are
    /// dropped.
    pub fn end_transaction(&self, index: i32, producer_id: i64, commit: bool) {
        let mut groups = self.groups();
        let control = Some(if commit {
            sluice_storage::producers::ControlType::Commit
        } else {
            sluice_storage::producers::ControlType::Abort
        });
        let partitions = self.offsets_partitions;
        let mut in_partition: HashMap<String, GroupEntry> = HashMap::new();
        let ids: Vec<String> = groups
            .iter()
            .filter(|(id, e)| {
                e.pending_txn.contains_key(&producer_id)
                    && records::partition_for(id, partitions) == index
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(entry) = groups.remove(&id) {
                in_partition.insert(id, entry);
            }
        }
        end_transaction(&mut in_partition, producer_id, control);
        groups.extend(in_partition);
    }

    /// Every live record of the groups on `index`: each group's stored
    /// record and committed offsets.
    fn live_records(&self, index: i32) -> Vec<(Key, Option<GroupRecord>)> {
        let groups = self.groups();
        let mut out = Vec::new();
        for (id, entry) in groups.iter() {
            if records::partition_for(id, self.offsets_partitions) != index {
                continue;
            }
            if let Some(stored) = &entry.stored {
                out.push((
                    Key::Group(id.clone()),
                    Some(GroupRecord::Group(stored.clone())),
                ));
            }
            for ((topic, partition), (_, value)) in &entry.offsets {
                let key = OffsetKey {
                    group: id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                out.push((Key::Offset(key), Some(GroupRecord::Offset(value.clone()))));
            }
        }
        out
    }

    /// Rewrites the live records of partition `index` into a new segment,
    /// makes them durable, then deletes every older segment.
    pub async fn compact_partition(&self, broker: &Broker, index: i32) -> Result<()> {
        let partition = broker
            .partition(OFFSETS_TOPIC, index)
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        let _alone = self.partition_locks[index as usize].write().await;
        let before = partition.log().size_bytes();
        let start = crate::blocking::disk_work(|| {
            let mut log = partition.log();
            log.roll(now_ms())?;
            Ok::<_, sluice_storage::StorageError>(log.log_end_offset())
        })?;
        let live = self.live_records(index);
        let mut end = start;
        for chunk in chunks_by_size(&live, COMPACTION_BATCH_BYTES) {
            let info = partition.append(encode_batch(chunk)?, now_ms())?;
            end = info.last_offset + 1;
        }
        // Whatever the fsync policy, the rewritten records must be on disk
        // before the only other copy goes.
        partition.make_durable(end).await?;
        partition.publish(end);
        partition.wake_fetches();
        let deleted = crate::blocking::disk_work(|| partition.log().delete_segments_before(start))?;
        self.appended[index as usize].store(live.len(), Ordering::Relaxed);
        info!(
            partition = index,
            live_records = live.len(),
            segments_deleted = deleted,
            bytes_before = before,
            bytes_after = partition.log().size_bytes(),
            "compacted {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}

/// Rewritten records go out in batches of about this many bytes, well
/// under any batch size limit.
const COMPACTION_BATCH_BYTES: usize = 256 * 1024;

/// Splits records into runs whose keys and values add up to about
/// `limit` bytes (a single larger record is a run of its own).
fn chunks_by_size(
    records: &[(Key, Option<GroupRecord>)],
    limit: usize,
) -> Vec<&[(Key, Option<GroupRecord>)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, (key, value)) in records.iter().enumerate() {
        let record_size = key_size(key) + value.as_ref().map_or(0, value_size);
        if i > start && size + record_size > limit {
            out.push(&records[start..i]);
            start = i;
            size = 0;
        }
        size += record_size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

fn key_size(key: &Key) -> usize {
    match key {
        Key::Offset(k) => 16 + k.group.len() + k.topic.len(),
        Key::Group(g) => 8 + g.len(),
    }
}

fn value_size(value: &GroupRecord) -> usize {
    match value {
        GroupRecord::Offset(o) => 32 + o.metadata.as_ref().map_or(0, String::len),
        GroupRecord::Group(g) => records::encode_group_value(g).len(),
    }
}

fn apply_offset(
    entry: &mut GroupEntry,
    log_offset: i64,
    key: &OffsetKey,
    value: Option<CommittedOffset>,
) {
    let slot = (key.topic.clone(), key.partition);
    if entry
        .offsets
        .get(&slot)
        .is_some_and(|(at, _)| *at > log_offset)
    {
        return;
    }
    match value {
        Some(v) => {
            entry.offsets.insert(slot, (log_offset, v));
        }
        None => {
            entry.history.remove(&slot);
            entry.offsets.remove(&slot);
        }
    }
}

/// Ends `producer_id`'s transaction in `groups`: on commit its pending
/// offsets apply (unless a later commit already replaced them), on abort
/// they are dropped. Other control records change nothing.
fn end_transaction(
    groups: &mut HashMap<String, GroupEntry>,
    producer_id: i64,
    control: Option<sluice_storage::producers::ControlType>,
) {
    use sluice_storage::producers::ControlType;
    let commit = match control {
        Some(ControlType::Commit) => true,
        Some(ControlType::Abort) => false,
        _ => return,
    };
    for (group, entry) in groups.iter_mut() {
        let Some(pending) = entry.pending_txn.remove(&producer_id) else {
            continue;
        };
        if !commit {
            continue;
        }
        for ((topic, partition), (log_offset, value)) in pending {
            let key = OffsetKey {
                group: group.clone(),
                topic,
                partition,
            };
            apply_offset(entry, log_offset, &key, Some(value));
        }
    }
}

/// Holds the offset records of a stored transactional batch pending under
/// its producer; returns how many.
fn apply_transactional_batch(
    groups: &mut HashMap<String, GroupEntry>,
    batch: &[u8],
    producer_id: i64,
) -> usize {
    let mut held = 0;
    let walked = crate::record_batch::for_each_record(batch, 0, |offset, record| {
        let Some(Key::Offset(key)) = record.key.and_then(records::decode_any_key) else {
            return;
        };
        let Some(value) = record.value.and_then(records::decode_value) else {
            return;
        };
        let entry = groups
            .entry(key.group.clone())
            .or_insert_with(|| GroupEntry::new(&key.group));
        entry
            .pending_txn
            .entry(producer_id)
            .or_default()
            .insert((key.topic, key.partition), (offset, value));
        held += 1;
    });
    if walked.is_err() {
        warn!("a damaged transactional batch in {OFFSETS_TOPIC}; skipping the rest of it");
    }
    held
}

/// Applies one stored batch of offset records; returns how many applied.
fn apply_batch(
    groups: &mut HashMap<String, GroupEntry>,
    batch: &[u8],
    consumer_limits: &ConsumerLimits,
) -> usize {
    use sluice_storage::records::{inflate, Codec, Records};
    let Ok(header) = sluice_storage::batch::validate(batch) else {
        return 0;
    };
    let Ok(codec) = Codec::from_id(header.compression()) else {
        return 0;
    };
    let Ok(section) = inflate(
        codec,
        &batch[sluice_storage::batch::HEADER_SIZE..],
        64 << 20,
    ) else {
        return 0;
    };
    let mut applied = 0;
    for record in Records::new(&section, header.records_count) {
        let Ok(record) = record else {
            warn!("a damaged record batch in {OFFSETS_TOPIC}; skipping the rest of it");
            break;
        };
        let Some(key) = record.key.and_then(records::decode_any_key) else {
            continue;
        };
        let log_offset = header.base_offset + i64::from(record.offset_delta);
        match key {
            Key::Offset(key) => {
                let value = match record.value {
                    Some(v) => match records::decode_value(v) {
                        Some(v) => Some(v),
                        None => continue,
                    },
                    None => None,
                };
                let entry = groups
                    .entry(key.group.clone())
                    .or_insert_with(|| GroupEntry::new(&key.group));
                apply_offset(entry, log_offset, &key, value);
            }
            Key::Group(group) => {
                let entry = groups
                    .entry(group.clone())
                    .or_insert_with(|| GroupEntry::new(&group));
                match record.value.map(records::decode_group_value) {
                    Some(Some(StoredGroupValue::Classic(stored))) => {
                        entry.stored_generation = stored.generation;
                        entry.stored_members = !stored.members.is_empty();
                        entry.stored = Some(StoredGroupValue::Classic(stored.clone()));
                        entry.classic = ClassicGroup::restore(&group, stored, Instant::now());
                        entry.consumer = None;
                    }
                    Some(Some(StoredGroupValue::Consumer(stored))) => {
                        entry.classic = ClassicGroup::new(&group);
                        entry.stored_generation = 0;
                        entry.stored_members = false;
                        entry.stored = Some(StoredGroupValue::Consumer(stored.clone()));
                        entry.consumer = Some(ConsumerGroup::restore(
                            &group,
                            stored,
                            consumer_limits,
                            Instant::now(),
                        ));
                    }
                    Some(None) => continue,
                    None => {
                        entry.classic = ClassicGroup::new(&group);
                        entry.stored_generation = 0;
                        entry.stored_members = false;
                        entry.consumer = None;
                        entry.stored = None;
                    }
                }
            }
        }
        applied += 1;
    }
    applied
}

/// The value of a record in `__consumer_offsets`.
#[derive(Debug, Clone)]
enum GroupRecord {
    Offset(CommittedOffset),
    Group(StoredGroupValue),
}

/// The records as a transactional batch of `producer` (id, epoch), for
/// TxnOffsetCommit.
fn encode_transactional_batch(
    records: &[(Key, Option<GroupRecord>)],
    producer: (i64, i16),
) -> Result<Vec<u8>> {
    let now = now_ms();
    let encoded: Vec<Record> = records
        .iter()
        .map(|(key, value)| {
            let (key, value) = encode_record(key, value.as_ref());
            crate::record_batch::transactional_record(now, key, value, producer)
        })
        .collect();
    crate::record_batch::encode(encoded)
}

/// A record's key and value bytes.
fn encode_record(key: &Key, value: Option<&GroupRecord>) -> (Bytes, Option<Bytes>) {
    let key = match key {
        Key::Offset(k) => records::encode_key(k),
        Key::Group(g) => records::encode_group_key(g),
    };
    let value = value.map(|v| match v {
        GroupRecord::Offset(o) => records::encode_value(o),
        GroupRecord::Group(g) => records::encode_group_value(g),
    });
    (key, value)
}

/// One uncompressed batch holding the records (None: a tombstone).
fn encode_batch(records: &[(Key, Option<GroupRecord>)]) -> Result<Vec<u8>> {
    let now = now_ms();
    let encoded: Vec<Record> = records
        .iter()
        .map(|(key, value)| {
            let (key, value) = encode_record(key, value.as_ref());
            crate::record_batch::record(now, Some(key), value, Default::default())
        })
        .collect();
    crate::record_batch::encode(encoded)
}

/// A reply that is ready now, in the form of one that may wait.
fn answered<T>(value: Result<T>) -> tokio::sync::oneshot::Receiver<Result<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(value);
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_batches_pass_the_producer_checks() {
        let records: Vec<_> = (0..3)
            .map(|p| {
                let key = OffsetKey {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: p,
                };
                let value = CommittedOffset {
                    offset: 10,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    commit_timestamp_ms: 0,
                };
                (Key::Offset(key), Some(GroupRecord::Offset(value)))
            })
            .collect();
        let batch = encode_batch(&records).expect("encode");
        sluice_storage::ProducedBatch::new(batch, 1 << 20).expect("valid");
    }
}
