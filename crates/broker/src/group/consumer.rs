//! One consumer group under the KIP-848 consumer protocol
//! (ConsumerGroupHeartbeat), as Kafka's coordinator runs it.
//!
//! The broker owns the assignment. Any change a heartbeat brings (a member
//! joins or leaves, a subscription changes, a subscribed topic gains
//! partitions) bumps the group epoch, and the assignor computes a new
//! target assignment for that epoch. Each member then moves towards its
//! target on its own heartbeats: first it is asked to give up what it must
//! revoke (it keeps its epoch until it reports them gone), then it receives
//! the new epoch and every partition of its target that no other member
//! still holds; a partition still held elsewhere follows on a later
//! heartbeat. Nothing stops the world: members keep consuming whatever
//! they are not asked to give up.
//!
//! Like `classic.rs`, this is a state machine without I/O or clocks: every
//! call takes `now`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use regex::Regex;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor, SubscribedTopics};
use super::records::{StoredClassicMember, StoredConsumerGroup, StoredConsumerMember};
use crate::error::{BrokerError, Result};

/// Member epochs with a meaning of their own.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Limits and timing for consumer groups (broker settings).
#[derive(Debug, Clone)]
pub struct ConsumerLimits {
    pub session_timeout: Duration,
    /// How often a member whose group is settled heartbeats.
    pub heartbeat_interval: Duration,
    /// How often members heartbeat while the group is moving partitions,
    /// so a handover takes round trips rather than heartbeat intervals.
    pub reconcile_heartbeat_interval: Duration,
    pub max_size: usize,
}

/// What the group needs to know about topics.
pub trait TopicView {
    /// A topic's id and partition count.
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// A topic's name.
    fn name_of(&self, id: Uuid) -> Option<String>;
    /// Every topic a regular expression may match (internal ones excluded).
    fn names(&self) -> Vec<String>;
}

/// A member's progress towards its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// At the group's assignment epoch, owning its whole target.
    Stable,
    /// Waiting for the member to report partitions revoked.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

impl MemberState {
    fn code(self) -> u8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    fn from_code(code: u8) -> MemberState {
        match code {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// A ConsumerGroupHeartbeat, as the handler decoded it. `None` fields did
/// not change since the member's previous heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    /// The partitions the member may use now, when they changed or the
    /// member asked in full.
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout: Duration,
    subscribed_names: Vec<String>,
    subscribed_regex: Option<String>,
    /// `subscribed_regex`, compiled once.
    regex: Option<Regex>,
    server_assignor: Option<String>,
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    assigned: Assignment,
    pending_revocation: Assignment,
    session_deadline: Instant,
    /// When a member that was asked to revoke partitions is removed if it
    /// has not.
    revocation_deadline: Option<Instant>,
    /// Set for a member that speaks the classic protocol
    /// (`classic_members.rs`).
    classic: Option<ClassicMember>,
}

impl Member {
    /// A member that just joined: no subscription, nothing assigned.
    fn new(id: &str, session_deadline: Instant) -> Member {
        Member {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::ZERO,
            subscribed_names: Vec::new(),
            subscribed_regex: None,
            regex: None,
            server_assignor: None,
            epoch: JOIN_EPOCH,
            previous_epoch: JOIN_EPOCH,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline,
            revocation_deadline: None,
            classic: None,
        }
    }
}

/// What a member of the classic protocol has beyond a consumer member.
#[derive(Debug, Clone)]
struct ClassicMember {
    session_timeout: Duration,
    /// The protocols it joined with, each with its subscription bytes.
    protocols: Vec<(String, Bytes)>,
    /// When the member is removed unless it syncs (after a join) or
    /// rejoins (after a heartbeat told it to).
    deadline: Option<Instant>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub assignment: Assignment,
    pub target: Assignment,
    /// A member of the classic protocol.
    pub classic: bool,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberView>,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub id: String,
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics the target was computed from.
    subscribed: SubscribedTopics,
    /// Which member holds each partition (assigned or pending revocation).
    owners: HashMap<(Uuid, i32), String>,
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed: SubscribedTopics::new(),
            owners: HashMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Kafka's consumer group states: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Whether some member subscribes to `topic` (by name or expression).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed.contains_key(topic)
            || self
                .members
                .values()
                .any(|m| m.subscribed_names.iter().any(|t| t == topic))
    }

    /// Checks the epoch an offset commit or fetch carries (Kafka's
    /// STALE_MEMBER_EPOCH when it is not the member's current one).
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<()> {
        let member = self
            .members
            .get(member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        if member.epoch != epoch {
            // A classic member's epoch is its generation.
            return Err(if member.classic.is_some() {
                BrokerError::IllegalGeneration(epoch, member.epoch)
            } else {
                BrokerError::StaleMemberEpoch(epoch, member.epoch)
            });
        }
        Ok(())
    }

    /// Handles one heartbeat: join, leave, or an update from a member,
    /// then moves that member towards its target assignment.
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        version: i16,
        limits: &ConsumerLimits,
        topics: &dyn TopicView,
        now: Instant,
    ) -> Result<HeartbeatReply> {
        validate(&request, version)?;
        match request.member_epoch {
            LEAVE_EPOCH => return self.leave(&request.member_id, limits),
            STATIC_LEAVE_EPOCH => return self.static_leave(&request, limits),
            _ => {}
        }
        let full_request = request.member_epoch == JOIN_EPOCH
            || (request.rebalance_timeout_ms != -1
                && request.subscribed_names.is_some()
                && request.owned.is_some());
        let member_id = if request.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };

        let (previous, is_new) = self.member_for(&member_id, &request, limits, now)?;
        let before_assigned = previous.assigned.clone();
        let mut member = previous;
        let subscription_changed = update_member(&mut member, &request, limits, now)?;
        self.set_member(member);

        // 1 and 2: the group epoch and target assignment follow.
        self.update_target(is_new || subscription_changed, topics);
        // 3. The member moves towards its target.
        self.reconcile(&member_id, request.owned.as_deref(), now);

        let member = self
            .members
            .get(&member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        let changed = member.assigned != before_assigned;
        Ok(HeartbeatReply {
            member_id: member_id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval: self.heartbeat_interval(limits),
            assignment: (full_request || changed).then(|| member.assigned.clone()),
        })
    }

    /// A new member or subscription, or changed topics, bump the group
    /// epoch; a newer group epoch gets a new target assignment.
    fn update_target(&mut self, member_changed: bool, topics: &dyn TopicView) {
        let subscribed = self.subscribed_topics(topics);
        if member_changed || subscribed != self.subscribed {
            self.epoch += 1;
            self.subscribed = subscribed;
        }
        if self.epoch > self.assignment_epoch {
            self.compute_target();
        }
    }

    /// The member a heartbeat speaks for: existing, replacing a static
    /// member that left with epoch -2, or new (epoch 0 only; then true).
    fn member_for(
        &mut self,
        member_id: &str,
        request: &Heartbeat,
        limits: &ConsumerLimits,
        now: Instant,
    ) -> Result<(Member, bool)> {
        if request.member_epoch != JOIN_EPOCH {
            let member = self
                .members
                .get(member_id)
                .filter(|m| m.classic.is_none())
                .ok_or(BrokerError::UnknownMemberId)?;
            check_epoch(member, request.member_epoch, request.owned.as_deref())?;
            return Ok((member.clone(), false));
        }
        // A static member coming back takes over what its predecessor held.
        if let Some(instance) = &request.instance_id {
            let existing = self.static_member(instance).cloned();
            if let Some(old) = existing {
                if old.id != member_id {
                    if old.epoch != STATIC_LEAVE_EPOCH {
                        return Err(BrokerError::UnreleasedInstanceId(instance.clone()));
                    }
                    let member = self.replace_static_member(old, member_id, now, limits);
                    return Ok((member, false));
                }
            }
        }
        if let Some(existing) = self.members.get(member_id) {
            // A member that rejoins with epoch 0 holds nothing any more.
            let mut member = existing.clone();
            member.epoch = JOIN_EPOCH;
            member.previous_epoch = JOIN_EPOCH;
            member.state = MemberState::Stable;
            member.assigned.clear();
            member.pending_revocation.clear();
            member.classic = None;
            return Ok((member, false));
        }
        if self.members.len() >= limits.max_size {
            return Err(BrokerError::GroupMaxSizeReached(limits.max_size));
        }
        Ok((Member::new(member_id, now + limits.session_timeout), true))
    }

    /// The member that holds `instance_id`, if any.
    fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Moves a departed static member's place (its partitions and target)
    /// to the member id that now carries its instance id.
    fn replace_static_member(
        &mut self,
        old: Member,
        new_id: &str,
        now: Instant,
        limits: &ConsumerLimits,
    ) -> Member {
        self.remove_member_entry(&old.id);
        if let Some(target) = self.target.remove(&old.id) {
            self.target.insert(new_id.to_string(), target);
        }
        Member {
            id: new_id.to_string(),
            epoch: JOIN_EPOCH,
            previous_epoch: JOIN_EPOCH,
            state: MemberState::Stable,
            pending_revocation: Assignment::new(),
            session_deadline: now + limits.session_timeout,
            revocation_deadline: None,
            classic: None,
            ..old
        }
    }

    fn leave(&mut self, member_id: &str, limits: &ConsumerLimits) -> Result<HeartbeatReply> {
        if !self.members.contains_key(member_id) {
            return Err(BrokerError::UnknownMemberId);
        }
        self.remove_member(member_id);
        Ok(HeartbeatReply {
            member_id: member_id.to_string(),
            member_epoch: LEAVE_EPOCH,
            heartbeat_interval: limits.heartbeat_interval,
            assignment: None,
        })
    }

    /// A static member leaving with epoch -2 keeps its partitions until
    /// its session times out, so that its restart finds them waiting.
    fn static_leave(
        &mut self,
        request: &Heartbeat,
        limits: &ConsumerLimits,
    ) -> Result<HeartbeatReply> {
        let member = self
            .members
            .get_mut(&request.member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        if member.instance_id != request.instance_id {
            return Err(BrokerError::FencedInstanceId(
                request.instance_id.clone().unwrap_or_default(),
            ));
        }
        member.epoch = STATIC_LEAVE_EPOCH;
        member.revocation_deadline = None;
        Ok(HeartbeatReply {
            member_id: request.member_id.clone(),
            member_epoch: STATIC_LEAVE_EPOCH,
            heartbeat_interval: limits.heartbeat_interval,
            assignment: None,
        })
    }

    /// Removes members whose session expired, and members that did not
    /// revoke partitions within their rebalance timeout. Returns the ids
    /// removed.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.revocation_deadline.is_some_and(|d| d <= now)
                    || m.classic
                        .as_ref()
                        .and_then(|c| c.deadline)
                        .is_some_and(|d| d <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        expired
    }

    fn remove_member(&mut self, member_id: &str) {
        self.remove_member_entry(member_id);
        self.target.remove(member_id);
        self.epoch += 1;
        if self.members.is_empty() {
            // Nothing to assign: the target is trivially current.
            self.assignment_epoch = self.epoch;
            self.subscribed.clear();
        }
    }

    fn remove_member_entry(&mut self, member_id: &str) {
        self.members.remove(member_id);
        self.owners.retain(|_, owner| owner != member_id);
    }

    /// Stores a member and indexes the partitions it holds.
    fn set_member(&mut self, member: Member) {
        self.owners.retain(|_, owner| *owner != member.id);
        for assignment in [&member.assigned, &member.pending_revocation] {
            for (topic, partitions) in assignment {
                for p in partitions {
                    self.owners.insert((*topic, *p), member.id.clone());
                }
            }
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Every topic some member subscribes to, resolved against the
    /// topics that exist now.
    fn subscribed_topics(&self, topics: &dyn TopicView) -> SubscribedTopics {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for member in self.members.values() {
            names.extend(member_topics(member, topics));
        }
        names
            .into_iter()
            .filter_map(|name| topics.topic(&name).map(|t| (name, t)))
            .collect()
    }

    fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(name) = &m.server_assignor {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .and_then(|(name, _)| Assignor::from_name(name))
            .unwrap_or(Assignor::DEFAULT)
    }

    fn compute_target(&mut self) {
        let members: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| {
                let topics: BTreeSet<String> = self
                    .subscribed
                    .keys()
                    .filter(|name| subscribes(m, name))
                    .cloned()
                    .collect();
                (m.id.clone(), topics)
            })
            .collect();
        self.target = self
            .assignor()
            .assign(&members, &self.subscribed, &self.target);
        self.assignment_epoch = self.epoch;
    }

    /// Kafka's CurrentAssignmentBuilder: one step of a member towards its
    /// target, given the partitions it reports owning.
    fn reconcile(&mut self, member_id: &str, owned: Option<&[(Uuid, Vec<i32>)]>, now: Instant) {
        let Some(member) = self.members.get(member_id).cloned() else {
            return;
        };
        if member.epoch == STATIC_LEAVE_EPOCH {
            return;
        }
        let next = match member.state {
            MemberState::Stable if member.epoch == self.assignment_epoch => return,
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(&member, member.epoch, owned, now)
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &member.pending_revocation) {
                    return;
                }
                self.next_assignment(&member, member.epoch + 1, owned, now)
            }
        };
        self.set_member(next);
    }

    fn next_assignment(
        &self,
        member: &Member,
        epoch: i32,
        owned: Option<&[(Uuid, Vec<i32>)]>,
        now: Instant,
    ) -> Member {
        let empty = Assignment::new();
        let target = self.target.get(&member.id).unwrap_or(&empty);
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut pending_assignment = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target
            .keys()
            .chain(member.assigned.keys())
            .copied()
            .collect();
        for topic in topics {
            let wanted = target.get(&topic).cloned().unwrap_or_default();
            let current = member.assigned.get(&topic).cloned().unwrap_or_default();
            let keep: BTreeSet<i32> = current.intersection(&wanted).copied().collect();
            let gone: BTreeSet<i32> = current.difference(&keep).copied().collect();
            let mut add = BTreeSet::new();
            for p in wanted.difference(&keep) {
                match self.owners.get(&(topic, *p)) {
                    Some(owner) if owner != &member.id => unreleased = true,
                    _ => {
                        add.insert(*p);
                    }
                }
            }
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !gone.is_empty() {
                revoke.insert(topic, gone);
            }
            if !add.is_empty() {
                pending_assignment.insert(topic, add);
            }
        }
        let mut next = member.clone();
        next.pending_revocation = Assignment::new();
        next.revocation_deadline = None;
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            // Keep the epoch until the member reports these revoked.
            next.state = MemberState::UnrevokedPartitions;
            set_epoch(&mut next, epoch);
            next.assigned = assigned;
            next.pending_revocation = revoke;
            next.revocation_deadline = Some(now + member.rebalance_timeout);
            return next;
        }
        for (topic, partitions) in pending_assignment {
            assigned.entry(topic).or_default().extend(partitions);
        }
        next.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        set_epoch(&mut next, self.assignment_epoch);
        next.assigned = assigned;
        next
    }

    /// Heartbeat quickly while partitions are moving, so that handovers
    /// are not paced by the settled interval.
    fn heartbeat_interval(&self, limits: &ConsumerLimits) -> Duration {
        if self.state_name() == "Stable" {
            limits.heartbeat_interval
        } else {
            limits.reconcile_heartbeat_interval
        }
    }

    pub fn view(&self) -> ConsumerGroupView {
        ConsumerGroupView {
            state: self.state_name(),
            group_epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().name(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_names: m.subscribed_names.clone(),
                    subscribed_regex: m.subscribed_regex.clone(),
                    assignment: m.assigned.clone(),
                    target: self.target.get(&m.id).cloned().unwrap_or_default(),
                    classic: m.classic.is_some(),
                })
                .collect(),
        }
    }

    /// The group as stored in `__consumer_offsets`.
    pub fn stored(&self) -> StoredConsumerGroup {
        StoredConsumerGroup {
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            subscribed: self.subscribed.clone(),
            members: self
                .members
                .values()
                .map(|m| StoredConsumerMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    subscribed_names: m.subscribed_names.clone(),
                    subscribed_regex: m.subscribed_regex.clone(),
                    server_assignor: m.server_assignor.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    state: m.state.code(),
                    assigned: m.assigned.clone(),
                    pending_revocation: m.pending_revocation.clone(),
                    target: self.target.get(&m.id).cloned().unwrap_or_default(),
                    classic: m.classic.as_ref().map(|c| StoredClassicMember {
                        session_timeout_ms: c.session_timeout.as_millis().min(i32::MAX as u128)
                            as i32,
                        protocols: c.protocols.clone(),
                    }),
                })
                .collect(),
        }
    }

    /// A group as it was stored; its members' sessions start now.
    pub fn restore(
        id: &str,
        stored: StoredConsumerGroup,
        limits: &ConsumerLimits,
        now: Instant,
    ) -> ConsumerGroup {
        let mut group = ConsumerGroup::new(id);
        group.epoch = stored.epoch;
        group.assignment_epoch = stored.assignment_epoch;
        group.subscribed = stored.subscribed;
        for m in stored.members {
            group.target.insert(m.member_id.clone(), m.target);
            let state = MemberState::from_code(m.state);
            let rebalance_timeout = Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64);
            let classic = m.classic.map(|c| ClassicMember {
                session_timeout: Duration::from_millis(c.session_timeout_ms.max(0) as u64),
                protocols: c.protocols,
                deadline: None,
            });
            let session_timeout = classic
                .as_ref()
                .map_or(limits.session_timeout, |c| c.session_timeout);
            group.set_member(Member {
                id: m.member_id,
                instance_id: m.instance_id,
                rack_id: m.rack_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout,
                subscribed_names: m.subscribed_names,
                regex: m.subscribed_regex.as_deref().and_then(|r| compile(r).ok()),
                subscribed_regex: m.subscribed_regex,
                server_assignor: m.server_assignor,
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state,
                assigned: m.assigned,
                pending_revocation: m.pending_revocation,
                session_deadline: now + session_timeout,
                revocation_deadline: (state == MemberState::UnrevokedPartitions)
                    .then(|| now + rebalance_timeout),
                classic,
            });
        }
        group
    }
}

fn set_epoch(member: &mut Member, epoch: i32) {
    if member.epoch != epoch {
        member.previous_epoch = member.epoch;
        member.epoch = epoch;
    }
}

/// Kafka's request checks (throwIfConsumerGroupHeartbeatRequestIsInvalid),
/// made before the group is looked up.
pub fn validate(request: &Heartbeat, version: i16) -> Result<()> {
    let invalid = |why: &str| Err(BrokerError::InvalidRequest(why.to_string()));
    if request.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if request.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    // From v1 the member makes up its own id (KIP-1082).
    if version >= 1 && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match request.member_epoch {
        JOIN_EPOCH => {
            if request.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if !request.owned.as_ref().is_some_and(Vec::is_empty) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            let names = request
                .subscribed_names
                .as_ref()
                .is_some_and(|n| !n.is_empty());
            if !names && request.subscribed_regex.is_none() {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        STATIC_LEAVE_EPOCH => {
            if request.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if request.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        }
        LEAVE_EPOCH => {
            if request.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        e if e > 0 => {
            if request.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    if let Some(name) = &request.server_assignor {
        if Assignor::from_name(name).is_none() {
            return Err(BrokerError::UnsupportedAssignor(name.clone()));
        }
    }
    if let Some(regex) = &request.subscribed_regex {
        compile(regex)?;
    }
    Ok(())
}

/// A subscription regex as Kafka evaluates it: it must match a whole
/// topic name (RE2/J's `matches()`), and its size is bounded.
fn compile(regex: &str) -> Result<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| BrokerError::InvalidRegularExpression(e.to_string()))
}

/// Applies the fields a heartbeat changed; true when the member's
/// subscription changed (which bumps the group epoch).
fn update_member(
    member: &mut Member,
    request: &Heartbeat,
    limits: &ConsumerLimits,
    now: Instant,
) -> Result<bool> {
    let mut changed = false;
    if let Some(id) = &request.instance_id {
        member.instance_id = Some(id.clone());
    }
    if let Some(rack) = &request.rack_id {
        member.rack_id = Some(rack.clone());
    }
    if request.rebalance_timeout_ms >= 0 {
        member.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms as u64);
    }
    if let Some(names) = &request.subscribed_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        if names != member.subscribed_names {
            member.subscribed_names = names;
            changed = true;
        }
    }
    if let Some(regex) = &request.subscribed_regex {
        // An empty expression clears it.
        let regex = Some(regex.clone()).filter(|r| !r.is_empty());
        if regex != member.subscribed_regex {
            member.regex = regex.as_deref().map(compile).transpose()?;
            member.subscribed_regex = regex;
            changed = true;
        }
    }
    if let Some(assignor) = &request.server_assignor {
        if member.server_assignor.as_deref() != Some(assignor) {
            member.server_assignor = Some(assignor.clone());
            changed = true;
        }
    }
    member.client_id = request.client_id.clone();
    member.client_host = request.client_host.clone();
    member.session_deadline = now + limits.session_timeout;
    Ok(changed)
}

/// Kafka's member epoch check: a newer epoch than the coordinator's, or an
/// older one that is not the previous epoch with a subset of the current
/// partitions (its response may have been lost), fences the member.
fn check_epoch(member: &Member, epoch: i32, owned: Option<&[(Uuid, Vec<i32>)]>) -> Result<()> {
    if epoch > member.epoch {
        return Err(BrokerError::FencedMemberEpoch(epoch, member.epoch));
    }
    if epoch < member.epoch
        && (epoch != member.previous_epoch || !is_subset(owned, &member.assigned))
    {
        return Err(BrokerError::FencedMemberEpoch(epoch, member.epoch));
    }
    Ok(())
}

fn is_subset(owned: Option<&[(Uuid, Vec<i32>)]>, assigned: &Assignment) -> bool {
    owned.unwrap_or_default().iter().all(|(topic, partitions)| {
        let mine = assigned.get(topic);
        partitions
            .iter()
            .all(|p| mine.is_some_and(|set| set.contains(p)))
    })
}

/// Whether the member reports owning any of `partitions`. A heartbeat
/// without the owned list (unchanged) counts as still owning them.
fn owns_any(owned: Option<&[(Uuid, Vec<i32>)]>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic, ps)| {
        partitions
            .get(topic)
            .is_some_and(|set| ps.iter().any(|p| set.contains(p)))
    })
}

/// The topic names a member subscribes to, its expression resolved.
fn member_topics(member: &Member, topics: &dyn TopicView) -> Vec<String> {
    let mut out = member.subscribed_names.clone();
    if let Some(regex) = &member.regex {
        out.extend(topics.names().into_iter().filter(|t| regex.is_match(t)));
    }
    out
}

fn subscribes(member: &Member, topic: &str) -> bool {
    member.subscribed_names.iter().any(|t| t == topic)
        || member.regex.as_ref().is_some_and(|re| re.is_match(topic))
}

mod classic_members;
#[cfg(test)]
mod tests;
