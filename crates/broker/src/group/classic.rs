//! One consumer group under the classic protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), as Kafka's group coordinator runs it: the
//! states Empty → PreparingRebalance → CompletingRebalance → Stable, the
//! generation, the leader, static members, and session and rebalance
//! timeouts.
//!
//! This is a state machine without I/O or clocks of its own: every call
//! takes `now`, and a JoinGroup or SyncGroup that must wait is parked as a
//! oneshot sender that a later call (another member's join, the leader's
//! assignment, a deadline in [`ClassicGroup::tick`]) completes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::records::{StoredGroup, StoredMember};
use crate::error::{BrokerError, Result};

/// Group states, named as Kafka names them (DescribeGroups, ListGroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Limits and timing a group runs under (broker settings).
#[derive(Debug, Clone)]
pub struct GroupLimits {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
    pub max_size: usize,
}

/// What a JoinGroup asks for.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member is given an id and asked to
    /// join again with it (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group may be told
    /// to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A completed JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// For the leader: every member with its metadata for the chosen
    /// protocol. Empty for the others.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

pub type JoinReply = oneshot::Receiver<Result<JoinOutcome>>;
pub type SyncReply = oneshot::Receiver<Result<Bytes>>;

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    /// Order of joining: the first joined member becomes leader.
    joined_seq: u64,
    awaiting_join: Option<oneshot::Sender<Result<JoinOutcome>>>,
    awaiting_sync: Option<oneshot::Sender<Result<Bytes>>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not yet joined, with
    /// when they expire.
    pending_ids: BTreeMap<String, Instant>,
    /// When a rebalance completes even if not every member rejoined.
    rebalance_deadline: Option<Instant>,
    /// A new group waits this long for more members before completing its
    /// first rebalance (group.initial.rebalance.delay.ms).
    initial_delay_until: Option<Instant>,
    next_seq: u64,
}

impl ClassicGroup {
    pub fn new(id: &str) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            next_seq: 0,
        }
    }

    /// The group as stored in `__consumer_offsets`.
    pub fn stored(&self) -> StoredGroup {
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            leader: self.leader.clone().unwrap_or_default(),
            generation: self.generation,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: duration_ms(m.session_timeout),
                    rebalance_timeout_ms: duration_ms(m.rebalance_timeout),
                    protocols: m.protocols.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// A group as it was stored: stable with its members (whose sessions
    /// start now, so that they can come back after a broker restart), or
    /// empty.
    pub fn restore(id: &str, stored: StoredGroup, now: Instant) -> ClassicGroup {
        let mut group = ClassicGroup::new(id);
        group.generation = stored.generation;
        group.protocol_type = Some(stored.protocol_type).filter(|p| !p.is_empty());
        group.protocol = Some(stored.protocol).filter(|p| !p.is_empty());
        group.leader = Some(stored.leader).filter(|l| !l.is_empty());
        for m in stored.members {
            group.next_seq += 1;
            let seq = if group.leader.as_deref() == Some(m.member_id.as_str()) {
                0
            } else {
                group.next_seq
            };
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: Duration::from_millis(
                    u64::try_from(m.session_timeout_ms).unwrap_or(0),
                ),
                rebalance_timeout: Duration::from_millis(
                    u64::try_from(m.rebalance_timeout_ms).unwrap_or(0),
                ),
                protocols: m.protocols,
                assignment: m.assignment,
                last_heartbeat: now,
                joined_seq: seq,
                awaiting_join: None,
                awaiting_sync: None,
            };
            group.members.insert(m.member_id, member);
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether any member's subscription (consumer protocol metadata for
    /// the group's protocol) names `topic`. A subscription that cannot be
    /// read counts as naming it, so that nothing in use is deleted.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        if self.members.is_empty() {
            return false;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().any(|m| {
            if self.protocol_type.as_deref() != Some("consumer") {
                return true;
            }
            subscribed_topics(&m.metadata_for(&protocol))
                .is_none_or(|topics| topics.iter().any(|t| t == topic))
        })
    }

    /// Empty, with no member ids handed out and waiting: nothing would be
    /// lost if the group were forgotten.
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending_ids.is_empty()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn members(&self) -> Vec<MemberView> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberView {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// Marks the group deleted: every waiting member is told to find the
    /// coordinator again.
    pub fn mark_dead(&mut self) {
        self.state = GroupState::Dead;
        for member in self.members.values_mut() {
            reply(
                &mut member.awaiting_join,
                Err(BrokerError::CoordinatorNotAvailable),
            );
            reply(
                &mut member.awaiting_sync,
                Err(BrokerError::CoordinatorNotAvailable),
            );
        }
        self.members.clear();
    }

    /// Answers every member waiting in JoinGroup or SyncGroup with
    /// `error` (the group is about to change type).
    pub fn fail_pending(&mut self, error: impl Fn() -> BrokerError) {
        for member in self.members.values_mut() {
            reply(&mut member.awaiting_join, Err(error()));
            reply(&mut member.awaiting_sync, Err(error()));
        }
    }

    /// Starts a rebalance: every member must join again (a consumer group
    /// that just became this classic group).
    pub fn start_rebalance(&mut self, limits: &GroupLimits, now: Instant) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(limits, now);
        }
    }

    /// JoinGroup. The reply arrives when the rebalance completes (or at
    /// once, for errors and for members that need not wait).
    pub fn join(&mut self, req: JoinRequest, limits: &GroupLimits, now: Instant) -> JoinReply {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.check_join(&req, limits) {
            let _ = tx.send(Err(e));
            return rx;
        }
        if req.member_id.is_empty() {
            self.join_unknown(req, limits, now, tx);
        } else {
            self.join_known(req, limits, now, tx);
        }
        rx
    }

    fn check_join(&self, req: &JoinRequest, limits: &GroupLimits) -> Result<()> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable);
        }
        check_session_timeout(req, limits)?;
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(BrokerError::InconsistentGroupProtocol(
                "a member must name a protocol type and at least one protocol".into(),
            ));
        }
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shared = req.protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .filter(|m| m.id != req.member_id)
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
            if !same_type || !shared {
                return Err(BrokerError::InconsistentGroupProtocol(
                    "the member's protocols are incompatible with the group's".into(),
                ));
            }
        }
        Ok(())
    }

    /// FENCED_INSTANCE_ID when `instance_id` belongs to another member.
    fn check_not_fenced(&self, member_id: &str, instance_id: Option<&str>) -> Result<()> {
        match instance_id.and_then(|i| self.static_member(i).map(|owner| (i, owner))) {
            Some((instance, owner)) if owner != member_id => {
                Err(BrokerError::FencedInstanceId(instance.to_string()))
            }
            _ => Ok(()),
        }
    }

    fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.as_str())
    }

    fn new_member_id(req: &JoinRequest) -> String {
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    fn join_unknown(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        tx: oneshot::Sender<Result<JoinOutcome>>,
    ) {
        let member_id = Self::new_member_id(&req);
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_member(&instance).map(str::to_string) {
                self.replace_static_member(&old_id, member_id, req, now, tx);
                return;
            }
        } else if req.require_known_member_id {
            // KIP-394: the member learns its id and joins again with it.
            self.pending_ids
                .insert(member_id.clone(), now + req.session_timeout);
            let _ = tx.send(Err(BrokerError::MemberIdRequired(member_id)));
            return;
        }
        if self.members.len() >= limits.max_size {
            let _ = tx.send(Err(BrokerError::GroupMaxSizeReached(limits.max_size)));
            return;
        }
        self.add_member(member_id, req, limits, now, tx);
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        tx: oneshot::Sender<Result<JoinOutcome>>,
    ) {
        let member_id = req.member_id.clone();
        if let Err(e) = self.check_not_fenced(&member_id, req.instance_id.as_deref()) {
            let _ = tx.send(Err(e));
            return;
        }
        if self.pending_ids.remove(&member_id).is_some() {
            if self.members.len() >= limits.max_size {
                let _ = tx.send(Err(BrokerError::GroupMaxSizeReached(limits.max_size)));
                return;
            }
            self.add_member(member_id, req, limits, now, tx);
            return;
        }
        let state = self.state;
        let Some(member) = self.members.get_mut(&member_id) else {
            let _ = tx.send(Err(BrokerError::UnknownMemberId));
            return;
        };
        let changed = member.protocols != req.protocols;
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = now;
        match state {
            GroupState::PreparingRebalance => {
                reply(
                    &mut member.awaiting_join,
                    Err(BrokerError::RebalanceInProgress),
                );
                member.awaiting_join = Some(tx);
                self.try_complete_join(now);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if !changed && self.leader.as_deref() != Some(member_id.as_str()) =>
            {
                // A follower that lost its JoinGroup response: the current
                // generation, without a rebalance.
                let outcome = self.outcome_for(&member_id, false);
                let _ = tx.send(Ok(outcome));
            }
            _ => {
                member.awaiting_join = Some(tx);
                self.prepare_rebalance(limits, now);
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        req: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        tx: oneshot::Sender<Result<JoinOutcome>>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.next_seq += 1;
        let member = Member {
            id: member_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_heartbeat: now,
            joined_seq: self.next_seq,
            awaiting_join: Some(tx),
            awaiting_sync: None,
        };
        self.members.insert(member_id, member);
        self.prepare_rebalance(limits, now);
        if let Some(until) = self.initial_delay_until {
            // Each member joining a new group extends the wait, up to the
            // rebalance deadline, so that members started together land in
            // one generation.
            let extended = (now + limits.initial_rebalance_delay)
                .min(self.rebalance_deadline.unwrap_or(until));
            self.initial_delay_until = Some(until.max(extended));
        }
        self.try_complete_join(now);
    }

    /// A static member rejoined with a new member id (a restart): it takes
    /// the old member's place. A stable group keeps its assignment and
    /// does not rebalance.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<Result<JoinOutcome>>,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            let _ = tx.send(Err(BrokerError::UnknownMemberId));
            return;
        };
        reply(
            &mut member.awaiting_join,
            Err(BrokerError::FencedInstanceId(
                req.instance_id.clone().unwrap_or_default(),
            )),
        );
        reply(
            &mut member.awaiting_sync,
            Err(BrokerError::FencedInstanceId(
                req.instance_id.clone().unwrap_or_default(),
            )),
        );
        let changed = member.protocols != req.protocols;
        member.id = new_id.clone();
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = now;
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        let state = self.state;
        self.members.insert(new_id.clone(), member);
        match state {
            // As in Kafka, only a stable group keeps going: one completing
            // a rebalance may have sent the old member id to the leader,
            // whose assignment would then miss the new id.
            GroupState::Stable if !changed => {
                let mut outcome = self.outcome_for(&new_id, was_leader);
                // A leader that can skip the assignment (KIP-814, JoinGroup
                // v9) does; an older one computes one, and its SyncGroup is
                // answered with the current assignment, as in Kafka.
                outcome.skip_assignment = was_leader && req.supports_skip_assignment;
                let _ = tx.send(Ok(outcome));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(tx);
                }
                self.try_complete_join(now);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(tx);
                }
                let limits = GroupLimits {
                    min_session_timeout: Duration::ZERO,
                    max_session_timeout: Duration::MAX,
                    initial_rebalance_delay: Duration::ZERO,
                    max_size: usize::MAX,
                };
                self.prepare_rebalance(&limits, now);
            }
        }
    }

    fn outcome_for(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members,
        }
    }

    /// Starts a rebalance (or lets one in progress go on).
    fn prepare_rebalance(&mut self, limits: &GroupLimits, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                reply(
                    &mut member.awaiting_sync,
                    Err(BrokerError::RebalanceInProgress),
                );
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if self.state != GroupState::PreparingRebalance {
            if self.state == GroupState::Empty && !limits.initial_rebalance_delay.is_zero() {
                self.initial_delay_until = Some(now + limits.initial_rebalance_delay);
            }
            self.state = GroupState::PreparingRebalance;
            self.rebalance_deadline = Some(now + timeout);
        }
    }

    /// Completes the rebalance once every member has rejoined (and a new
    /// group's initial delay has passed).
    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.initial_delay_until.is_some_and(|until| now < until) {
            return;
        }
        if self.members.values().all(|m| m.awaiting_join.is_some()) {
            self.complete_join();
        }
    }

    fn complete_join(&mut self) {
        self.initial_delay_until = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        let leader_stays = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_stays {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = self.outcome_for(&id, is_leader);
            if let Some(member) = self.members.get_mut(&id) {
                member.assignment = Bytes::new();
                reply(&mut member.awaiting_join, Ok(outcome));
            }
        }
    }

    /// The protocol every member supports with the most votes (each member
    /// votes for its first supported choice), as Kafka selects it.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        candidates
            .into_iter()
            .max_by_key(|name| votes.get(name).copied().unwrap_or(0))
            .cloned()
    }

    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        self.check_not_fenced(member_id, instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(BrokerError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration(generation, self.generation));
        }
        Ok(())
    }

    /// SyncGroup: the leader's assignment is stored and handed out; the
    /// others wait for it.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> SyncReply {
        let (tx, rx) = oneshot::channel();
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            let _ = tx.send(Err(BrokerError::UnknownMemberId));
            return rx;
        }
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            let _ = tx.send(Err(e));
            return rx;
        }
        let (protocol_type, protocol_name) = protocol;
        let mismatched = protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol.as_deref());
        if mismatched {
            let _ = tx.send(Err(BrokerError::InconsistentGroupProtocol(
                "SyncGroup names another protocol than the group's".into(),
            )));
            return rx;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let _ = tx.send(Err(BrokerError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = tx.send(Ok(assignment));
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(member_id) {
                    reply(
                        &mut member.awaiting_sync,
                        Err(BrokerError::RebalanceInProgress),
                    );
                    member.awaiting_sync = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = given.remove(&member.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    for member in self.members.values_mut() {
                        let assignment = member.assignment.clone();
                        reply(&mut member.awaiting_sync, Ok(assignment));
                    }
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        rx
    }

    /// Heartbeat: keeps the member's session alive and tells it when to
    /// rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<()> {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(BrokerError::UnknownMemberId);
        }
        self.check_not_fenced(member_id, instance_id)?;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(BrokerError::UnknownMemberId);
        };
        member.last_heartbeat = now;
        if self.state == GroupState::PreparingRebalance {
            return Err(BrokerError::RebalanceInProgress);
        }
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration(generation, self.generation));
        }
        Ok(())
    }

    /// LeaveGroup for one member (by member id, or by instance id when the
    /// member id is empty).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &GroupLimits,
        now: Instant,
    ) -> Result<()> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable);
        }
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => self
                .static_member(instance)
                .map(str::to_string)
                .ok_or(BrokerError::UnknownMemberId)?,
            _ => {
                self.check_not_fenced(member_id, instance_id)?;
                member_id.to_string()
            }
        };
        if self.pending_ids.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(BrokerError::UnknownMemberId);
        }
        self.remove_member(&id, limits, now);
        Ok(())
    }

    fn remove_member(&mut self, member_id: &str, limits: &GroupLimits, now: Instant) {
        if let Some(mut member) = self.members.remove(member_id) {
            reply(&mut member.awaiting_join, Err(BrokerError::UnknownMemberId));
            reply(&mut member.awaiting_sync, Err(BrokerError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(limits, now);
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Applies deadlines: expired sessions, a rebalance that waited long
    /// enough, the end of a new group's initial delay, and member ids
    /// handed out but never used.
    pub fn tick(&mut self, limits: &GroupLimits, now: Instant) {
        self.pending_ids.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .filter(|m| now.duration_since(m.last_heartbeat) > m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member's session expired; removing it");
            self.remove_member(&id, limits, now);
        }
        if self.state == GroupState::PreparingRebalance {
            if self.rebalance_deadline.is_some_and(|d| now >= d) {
                // Members that did not rejoin in time are dropped.
                let laggards: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in laggards {
                    if let Some(mut member) = self.members.remove(&id) {
                        reply(&mut member.awaiting_sync, Err(BrokerError::UnknownMemberId));
                    }
                    if self.leader.as_deref() == Some(id.as_str()) {
                        self.leader = None;
                    }
                }
                self.complete_join();
            } else {
                self.try_complete_join(now);
            }
        }
    }
}

/// The topics of a consumer protocol subscription (version i16, then an
/// array of strings), or None if the bytes are not one.
/// INVALID_SESSION_TIMEOUT unless a JoinGroup's session timeout is within
/// the broker's bounds (whatever the group's type).
pub fn check_session_timeout(req: &JoinRequest, limits: &GroupLimits) -> Result<()> {
    if req.session_timeout < limits.min_session_timeout
        || req.session_timeout > limits.max_session_timeout
    {
        return Err(BrokerError::InvalidSessionTimeout(format!(
            "session timeout {:?} is outside [{:?}, {:?}] (group_min_session_timeout_ms, group_max_session_timeout_ms)",
            req.session_timeout, limits.min_session_timeout, limits.max_session_timeout
        )));
    }
    Ok(())
}

fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    super::consumer_protocol::decode_subscription(metadata).map(|s| s.topics)
}

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn reply<T>(slot: &mut Option<oneshot::Sender<Result<T>>>, value: Result<T>) {
    if let Some(tx) = slot.take() {
        let _ = tx.send(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GroupLimits {
        GroupLimits {
            min_session_timeout: Duration::from_millis(10),
            max_session_timeout: Duration::from_secs(600),
            initial_rebalance_delay: Duration::ZERO,
            max_size: 100,
        }
    }

    fn join_req(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn now_result<T: std::fmt::Debug>(mut rx: oneshot::Receiver<Result<T>>) -> Option<Result<T>> {
        rx.try_recv().ok()
    }

    /// A member's first join: MEMBER_ID_REQUIRED, then the join with its id.
    fn join_new(group: &mut ClassicGroup, now: Instant) -> (String, JoinReply) {
        let first = now_result(group.join(join_req(""), &limits(), now)).expect("answered");
        let Err(BrokerError::MemberIdRequired(id)) = first else {
            panic!("expected MEMBER_ID_REQUIRED, got {first:?}");
        };
        let rx = group.join(join_req(&id), &limits(), now);
        (id, rx)
    }

    #[test]
    fn two_members_rebalance_into_one_generation_and_sync() {
        let t0 = Instant::now();
        let mut group = ClassicGroup::new("g");
        let (a, a_join) = join_new(&mut group, t0);
        // One member: the rebalance completes at once.
        let a_outcome = now_result(a_join).expect("done").expect("ok");
        assert_eq!(a_outcome.generation, 1);
        assert_eq!(a_outcome.leader, a);
        let a_sync = group.sync(
            &a,
            None,
            1,
            (None, None),
            vec![(a.clone(), Bytes::from_static(b"all"))],
        );
        assert_eq!(
            now_result(a_sync).expect("done").expect("ok"),
            Bytes::from_static(b"all")
        );
        assert_eq!(group.state(), GroupState::Stable);

        // A second member joins: the first learns of it by heartbeat.
        let (b, b_join) = join_new(&mut group, t0);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert!(matches!(
            group.heartbeat(&a, None, 1, t0),
            Err(BrokerError::RebalanceInProgress)
        ));
        let mut b_join = b_join;
        assert!(b_join.try_recv().is_err(), "completes only when a rejoins");
        let a_join = group.join(join_req(&a), &limits(), t0);
        let a_outcome = now_result(a_join).expect("done").expect("ok");
        let b_outcome = b_join.try_recv().expect("done").expect("ok");
        assert_eq!(a_outcome.generation, 2);
        assert_eq!(b_outcome.generation, 2);
        assert_eq!(a_outcome.leader, a, "the leader stays");
        assert_eq!(a_outcome.members.len(), 2);
        assert!(b_outcome.members.is_empty());

        let mut b_sync = group.sync(&b, None, 2, (None, None), vec![]);
        assert!(
            b_sync.try_recv().is_err(),
            "a follower waits for the leader"
        );
        let a_sync = group.sync(
            &a,
            None,
            2,
            (Some("consumer"), Some("range")),
            vec![
                (a.clone(), Bytes::from_static(b"p0")),
                (b.clone(), Bytes::from_static(b"p1")),
            ],
        );
        assert_eq!(
            now_result(a_sync).expect("done").expect("ok"),
            Bytes::from_static(b"p0")
        );
        assert_eq!(
            b_sync.try_recv().expect("done").expect("ok"),
            Bytes::from_static(b"p1")
        );
        assert!(group.heartbeat(&b, None, 2, t0).is_ok());
        assert!(matches!(
            group.heartbeat(&b, None, 1, t0),
            Err(BrokerError::IllegalGeneration(1, 2))
        ));
    }

    #[test]
    fn an_expired_member_is_removed_and_the_rest_rebalance() {
        let t0 = Instant::now();
        let mut group = ClassicGroup::new("g");
        let (a, a_join) = join_new(&mut group, t0);
        now_result(a_join).expect("done").expect("ok");
        let (b, _b_join) = join_new(&mut group, t0);
        let a_join = group.join(join_req(&a), &limits(), t0);
        now_result(a_join).expect("done").expect("ok");
        group.sync(&a, None, 2, (None, None), vec![]);
        assert_eq!(group.state(), GroupState::Stable);
        // b stops heartbeating; a keeps going.
        let later = t0 + Duration::from_secs(11);
        group.heartbeat(&a, None, 2, later).expect("a alive");
        group.tick(&limits(), later);
        assert!(!group.has_member(&b));
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        let a_join = group.join(join_req(&a), &limits(), later);
        let outcome = now_result(a_join).expect("done").expect("ok");
        assert_eq!(outcome.generation, 3);
        assert_eq!(outcome.members.len(), 1);
    }

    #[test]
    fn a_static_member_that_restarts_keeps_its_assignment_without_a_rebalance() {
        let t0 = Instant::now();
        let mut group = ClassicGroup::new("g");
        let mut req = join_req("");
        req.instance_id = Some("worker-1".into());
        let outcome = now_result(group.join(req.clone(), &limits(), t0))
            .expect("done")
            .expect("static members need no second join");
        let first_id = outcome.member_id.clone();
        group.sync(
            &first_id,
            Some("worker-1"),
            1,
            (None, None),
            vec![(first_id.clone(), Bytes::from_static(b"mine"))],
        );
        assert_eq!(group.state(), GroupState::Stable);
        // Restart: a new join with no member id and the same instance id.
        let outcome = now_result(group.join(req, &limits(), t0))
            .expect("done")
            .expect("ok");
        assert_ne!(outcome.member_id, first_id);
        assert_eq!(outcome.generation, 1, "no rebalance");
        assert!(outcome.skip_assignment);
        assert_eq!(group.state(), GroupState::Stable);
        let sync = group.sync(
            &outcome.member_id,
            Some("worker-1"),
            1,
            (None, None),
            vec![],
        );
        assert_eq!(
            now_result(sync).expect("done").expect("ok"),
            Bytes::from_static(b"mine")
        );
        // The old incarnation is fenced.
        assert!(matches!(
            group.heartbeat(&first_id, Some("worker-1"), 1, t0),
            Err(BrokerError::FencedInstanceId(_))
        ));
        // A leader on a JoinGroup before v9 cannot skip the assignment: it
        // gets the members and computes one, which the stable group ignores.
        let mut old_client = join_req("");
        old_client.instance_id = Some("worker-1".into());
        old_client.supports_skip_assignment = false;
        let outcome = now_result(group.join(old_client, &limits(), t0))
            .expect("done")
            .expect("ok");
        assert_eq!(outcome.generation, 1, "no rebalance");
        assert!(!outcome.skip_assignment);
        assert_eq!(outcome.members.len(), 1);
        let sync = group.sync(
            &outcome.member_id,
            Some("worker-1"),
            1,
            (None, None),
            vec![(outcome.member_id.clone(), Bytes::from_static(b"other"))],
        );
        assert_eq!(
            now_result(sync).expect("done").expect("ok"),
            Bytes::from_static(b"mine")
        );
        assert_eq!(group.state(), GroupState::Stable);
    }

    #[test]
    fn a_new_group_waits_the_initial_delay_for_members_started_together() {
        let t0 = Instant::now();
        let limits = GroupLimits {
            initial_rebalance_delay: Duration::from_millis(300),
            ..limits()
        };
        let mut group = ClassicGroup::new("g");
        let mut joins = Vec::new();
        for i in 0..3 {
            let at = t0 + Duration::from_millis(i * 50);
            let first = now_result(group.join(join_req(""), &limits, at)).expect("answered");
            let Err(BrokerError::MemberIdRequired(id)) = first else {
                panic!()
            };
            joins.push(group.join(join_req(&id), &limits, at));
        }
        group.tick(&limits, t0 + Duration::from_millis(200));
        assert!(
            joins.iter_mut().all(|j| j.try_recv().is_err()),
            "still waiting"
        );
        group.tick(&limits, t0 + Duration::from_millis(500));
        let outcomes: Vec<_> = joins
            .into_iter()
            .map(|j| now_result(j).expect("done").expect("ok"))
            .collect();
        assert!(
            outcomes.iter().all(|o| o.generation == 1),
            "one generation for all three"
        );
    }

    #[test]
    fn consumer_subscriptions_are_read_without_trusting_their_counts() {
        let mut metadata = vec![0, 1, 0, 0, 0, 2];
        for topic in ["orders", "audit"] {
            metadata.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            metadata.extend_from_slice(topic.as_bytes());
        }
        // No user data, no owned partitions.
        metadata.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            subscribed_topics(&metadata),
            Some(vec!["orders".to_string(), "audit".to_string()])
        );
        assert_eq!(subscribed_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0]), None);
    }

    #[test]
    fn bad_joins_get_their_error_codes_and_leave_the_group_as_it_was() {
        let t0 = Instant::now();
        let mut group = ClassicGroup::new("g");
        let mut short = join_req("");
        short.session_timeout = Duration::from_millis(1);
        assert!(matches!(
            now_result(group.join(short, &limits(), t0)),
            Some(Err(BrokerError::InvalidSessionTimeout(_)))
        ));
        let mut empty = join_req("");
        empty.protocols.clear();
        assert!(matches!(
            now_result(group.join(empty, &limits(), t0)),
            Some(Err(BrokerError::InconsistentGroupProtocol(_)))
        ));
        assert!(matches!(
            now_result(group.join(join_req("nobody"), &limits(), t0)),
            Some(Err(BrokerError::UnknownMemberId))
        ));
        assert_eq!(group.state(), GroupState::Empty);
        assert!(group.is_empty());
    }
}
