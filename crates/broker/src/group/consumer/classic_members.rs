//! Members of the classic protocol inside a consumer group, so that an
//! application can move from one protocol to the other one member at a
//! time, as Kafka allows (its default `group.consumer.migration.policy`,
//! bidirectional).
//!
//! A classic member is a consumer member whose requests arrive as
//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup. The broker still owns
//! the assignment: a JoinGroup updates the member's subscription (read
//! from the embedded consumer protocol) and moves it towards its target
//! with the partitions it reports owning; the JoinGroup answer makes it a
//! follower (no leader is named), and its SyncGroup returns the partitions
//! the broker gave it. Its generation is its member epoch. A heartbeat
//! answers REBALANCE_IN_PROGRESS whenever the member has something to do:
//! the group moved on, it must give partitions up, or partitions it waits
//! for were released. A member that does not sync after joining, or
//! rejoin after being told to, within its rebalance timeout is removed.
//!
//! The conversions of a whole group (a classic group taking its first
//! KIP-848 member, a consumer group left with only classic members) are
//! here too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use uuid::Uuid;

use super::{ClassicMember, ConsumerGroup, ConsumerLimits, Member, MemberState, TopicView};
use crate::error::{BrokerError, Result};
use crate::group::assignor::Assignment;
use crate::group::classic::{JoinOutcome, JoinRequest};
use crate::group::consumer_protocol::{self, Subscription};
use crate::group::records::{StoredGroup, StoredMember};

/// The protocol type every classic consumer announces.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

impl ConsumerGroup {
    /// Whether every member speaks the classic protocol (and there is at
    /// least one): the group can go back to being a classic group.
    pub fn only_classic_members(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// JoinGroup from a classic member. Answers at once: the broker, not
    /// a leader, assigns.
    pub fn classic_join(
        &mut self,
        req: JoinRequest,
        limits: &ConsumerLimits,
        topics: &dyn TopicView,
        now: Instant,
    ) -> Result<JoinOutcome> {
        let subscription = classic_subscription(&req)?;
        let (mut member, is_new) = self.classic_member_for(&req, limits, now)?;
        let member_id = member.id.clone();

        let mut names = subscription.topics.clone();
        names.sort();
        names.dedup();
        let subscription_changed = names != member.subscribed_names;
        member.subscribed_names = names;
        member.subscribed_regex = None;
        member.regex = None;
        member.server_assignor = None;
        member.instance_id = req.instance_id.clone();
        if let Some(rack) = &subscription.rack_id {
            member.rack_id = Some(rack.clone());
        }
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_deadline = now + req.session_timeout;
        member.classic = Some(ClassicMember {
            session_timeout: req.session_timeout,
            protocols: req.protocols.clone(),
            // It must sync within its rebalance timeout.
            deadline: Some(now + req.rebalance_timeout),
        });
        self.set_member(member);

        self.update_target(is_new || subscription_changed, topics);
        let owned = to_ids(&subscription.owned, topics);
        self.reconcile(&member_id, Some(owned.as_slice()), now);

        let member = self
            .members
            .get(&member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        Ok(JoinOutcome {
            generation: member.epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol: req.protocols.first().map(|(name, _)| name.clone()),
            // No leader: every classic member is a follower whose
            // assignment comes from the broker.
            leader: String::new(),
            member_id,
            skip_assignment: false,
            members: Vec::new(),
        })
    }

    /// The member a classic JoinGroup speaks for, and whether it is new.
    fn classic_member_for(
        &mut self,
        req: &JoinRequest,
        limits: &ConsumerLimits,
        now: Instant,
    ) -> Result<(Member, bool)> {
        let unknown = req.member_id.is_empty();
        if let Some(instance) = &req.instance_id {
            let existing = self.static_member(instance).cloned();
            if let Some(old) = existing {
                if unknown {
                    // A restarted static member takes its predecessor's
                    // place and target; it holds nothing yet.
                    let new_id = Uuid::new_v4().to_string();
                    let mut member = self.replace_static_member(old, &new_id, now, limits);
                    member.assigned.clear();
                    return Ok((member, false));
                }
                if old.id != req.member_id {
                    return Err(BrokerError::FencedInstanceId(instance.clone()));
                }
                return Ok((old, false));
            }
        }
        if unknown && req.instance_id.is_none() && req.require_known_member_id {
            // KIP-394: the member learns its id and joins again with it.
            return Err(BrokerError::MemberIdRequired(Uuid::new_v4().to_string()));
        }
        let member_id = if unknown {
            Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        if let Some(existing) = self.members.get(&member_id) {
            if existing.classic.is_none() {
                // A member of the consumer protocol cannot switch by
                // sending a JoinGroup with its id.
                return Err(BrokerError::UnknownMemberId);
            }
            return Ok((existing.clone(), false));
        }
        if self.members.len() >= limits.max_size {
            return Err(BrokerError::GroupMaxSizeReached(limits.max_size));
        }
        let mut member = Member::new(&member_id, now + req.session_timeout);
        member.rebalance_timeout = req.rebalance_timeout;
        Ok((member, true))
    }

    /// SyncGroup from a classic member: its assignment, in the embedded
    /// protocol's version it subscribed with.
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        topics: &dyn TopicView,
        now: Instant,
    ) -> Result<Bytes> {
        let group_epoch = self.epoch;
        let member = self.classic_member_mut(member_id, instance_id)?;
        if generation != member.epoch {
            return Err(BrokerError::IllegalGeneration(generation, member.epoch));
        }
        let (protocol_type, protocol_name) = protocol;
        let classic = member
            .classic
            .as_mut()
            .ok_or(BrokerError::UnknownMemberId)?;
        let (first_name, first_metadata) = classic
            .protocols
            .first()
            .cloned()
            .ok_or(BrokerError::UnknownMemberId)?;
        if protocol_type.is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || protocol_name.is_some_and(|p| p != first_name)
        {
            return Err(BrokerError::InconsistentGroupProtocol(
                "SyncGroup names another protocol than the member joined with".into(),
            ));
        }
        if group_epoch > member.epoch && member.state != MemberState::UnrevokedPartitions {
            // The group moved on since this member joined: join again.
            classic.deadline = Some(now + member.rebalance_timeout);
            return Err(BrokerError::RebalanceInProgress);
        }
        classic.deadline = None;
        member.session_deadline = now + classic.session_timeout;
        let partitions = to_names(&member.assigned, topics);
        Ok(consumer_protocol::encode_assignment(
            consumer_protocol::version_of(&first_metadata),
            &partitions,
        ))
    }

    /// Heartbeat from a classic member: REBALANCE_IN_PROGRESS when it has
    /// to join again to move towards its target.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<()> {
        let group_epoch = self.epoch;
        let waiting = self.waiting_on_unreleased(member_id);
        let member = self.classic_member_mut(member_id, instance_id)?;
        if generation != member.epoch {
            return Err(BrokerError::IllegalGeneration(generation, member.epoch));
        }
        let rebalance_timeout = member.rebalance_timeout;
        let must_rejoin = member.epoch < group_epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions && !waiting);
        let classic = member
            .classic
            .as_mut()
            .ok_or(BrokerError::UnknownMemberId)?;
        member.session_deadline = now + classic.session_timeout;
        if must_rejoin {
            classic.deadline.get_or_insert(now + rebalance_timeout);
            return Err(BrokerError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one classic member (by member id, or by instance id
    /// when the member id is empty). Returns the id of the member removed.
    pub fn classic_leave(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<String> {
        let id = match instance_id {
            Some(instance) => {
                let member = self
                    .static_member(instance)
                    .ok_or(BrokerError::UnknownMemberId)?;
                if !member_id.is_empty() && member.id != member_id {
                    return Err(BrokerError::FencedInstanceId(instance.to_string()));
                }
                member.id.clone()
            }
            None => member_id.to_string(),
        };
        match self.members.get(&id) {
            Some(member) if member.classic.is_some() => {
                self.remove_member(&id);
                Ok(id)
            }
            _ => Err(BrokerError::UnknownMemberId),
        }
    }

    /// The classic member a request names, checked as Kafka checks it: a
    /// static member by its instance id, which must carry its member id.
    fn classic_member_mut(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&mut Member> {
        if let Some(instance) = instance_id {
            let holder = self
                .static_member(instance)
                .ok_or(BrokerError::UnknownMemberId)?;
            if holder.id != member_id {
                return Err(BrokerError::FencedInstanceId(instance.to_string()));
            }
        }
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(BrokerError::UnknownMemberId)?;
        if member.classic.is_none() {
            return Err(BrokerError::UnknownMemberId);
        }
        Ok(member)
    }

    /// Whether some partition of the member's target that it does not
    /// hold yet is still held by another member.
    fn waiting_on_unreleased(&self, member_id: &str) -> bool {
        let Some(target) = self.target.get(member_id) else {
            return false;
        };
        let assigned = self.members.get(member_id).map(|m| &m.assigned);
        target.iter().any(|(topic, partitions)| {
            partitions.iter().any(|p| {
                let held = assigned.is_some_and(|a| a.get(topic).is_some_and(|s| s.contains(p)));
                !held
                    && self
                        .owners
                        .get(&(*topic, *p))
                        .is_some_and(|o| o != member_id)
            })
        })
    }

    /// A classic group taking its first member of the consumer protocol
    /// becomes a consumer group: each member keeps its generation (as its
    /// epoch) and its assignment (as its target), so nothing moves until
    /// the joining member bumps the epoch. None when the group cannot be
    /// converted: not the consumer embedded protocol, or bytes that do
    /// not read as it.
    pub fn from_classic(
        id: &str,
        classic: &StoredGroup,
        topics: &dyn TopicView,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        if classic.protocol_type != CONSUMER_PROTOCOL_TYPE {
            return None;
        }
        let mut group = ConsumerGroup::new(id);
        group.epoch = classic.generation;
        group.assignment_epoch = classic.generation;
        for m in &classic.members {
            let metadata = m
                .protocols
                .iter()
                .find(|(name, _)| *name == classic.protocol)
                .or(m.protocols.first())
                .map(|(_, metadata)| metadata.clone())?;
            let subscription = consumer_protocol::decode_subscription(&metadata)?;
            let assigned = to_ids(
                &consumer_protocol::decode_assignment(&m.assignment)?,
                topics,
            );
            let assigned: Assignment = assigned
                .into_iter()
                .map(|(topic, ps)| (topic, ps.into_iter().collect::<BTreeSet<i32>>()))
                .collect();
            let session_timeout = millis(m.session_timeout_ms);
            let mut names = subscription.topics.clone();
            names.sort();
            names.dedup();
            group.target.insert(m.member_id.clone(), assigned.clone());
            group.set_member(Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: subscription.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: millis(m.rebalance_timeout_ms),
                subscribed_names: names,
                subscribed_regex: None,
                regex: None,
                server_assignor: None,
                epoch: classic.generation,
                previous_epoch: classic.generation,
                state: MemberState::Stable,
                assigned,
                pending_revocation: Assignment::new(),
                session_deadline: now + session_timeout,
                revocation_deadline: None,
                classic: Some(ClassicMember {
                    session_timeout,
                    protocols: m.protocols.clone(),
                    deadline: None,
                }),
            });
        }
        group.subscribed = group.subscribed_topics(topics);
        Some(group)
    }

    /// A consumer group left with only classic members, as the classic
    /// group it becomes: its epoch as the generation, each member's
    /// target as its assignment, and the protocol all members share.
    /// None when they share none.
    pub fn to_classic(&self, topics: &dyn TopicView) -> Option<StoredGroup> {
        let protocol = self.common_protocol()?;
        let members = self
            .members
            .values()
            .map(|m| {
                let classic = m.classic.as_ref()?;
                let metadata = classic
                    .protocols
                    .iter()
                    .find(|(name, _)| *name == protocol)
                    .map(|(_, metadata)| metadata.clone())?;
                let target = self.target.get(&m.id).cloned().unwrap_or_default();
                Some(StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: as_millis(classic.session_timeout),
                    rebalance_timeout_ms: as_millis(m.rebalance_timeout),
                    protocols: classic.protocols.clone(),
                    assignment: consumer_protocol::encode_assignment(
                        consumer_protocol::version_of(&metadata),
                        &to_names(&target, topics),
                    ),
                })
            })
            .collect::<Option<Vec<StoredMember>>>()?;
        Some(StoredGroup {
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocol,
            leader: String::new(),
            generation: self.epoch,
            members,
        })
    }

    /// The protocol every classic member supports that most members
    /// prefer, as Kafka's classic group chooses one.
    fn common_protocol(&self) -> Option<String> {
        let members: Vec<&ClassicMember> = self
            .members
            .values()
            .map(|m| m.classic.as_ref())
            .collect::<Option<Vec<_>>>()?;
        let supported_by_all = |name: &str| {
            members
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        };
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| supported_by_all(n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| name.to_string())
    }
}

/// The subscription a classic JoinGroup carries: the consumer embedded
/// protocol, read from its first (preferred) protocol as Kafka reads it.
fn classic_subscription(req: &JoinRequest) -> Result<Subscription> {
    let refuse = |why: &str| Err(BrokerError::InconsistentGroupProtocol(why.to_string()));
    if req.protocol_type != CONSUMER_PROTOCOL_TYPE {
        return refuse("a consumer group takes only members of protocol type \"consumer\"");
    }
    let Some((_, metadata)) = req.protocols.first() else {
        return refuse("a member must name at least one protocol");
    };
    match consumer_protocol::decode_subscription(metadata) {
        Some(subscription) => Ok(subscription),
        None => refuse("the member's subscription does not read as the consumer protocol"),
    }
}

/// Topic names to ids; topics that do not exist are left out.
fn to_ids(partitions: &[(String, Vec<i32>)], topics: &dyn TopicView) -> Vec<(Uuid, Vec<i32>)> {
    partitions
        .iter()
        .filter_map(|(name, ps)| topics.topic(name).map(|(id, _)| (id, ps.clone())))
        .collect()
}

/// Topic ids to names, sorted by name; deleted topics are left out.
fn to_names(assignment: &Assignment, topics: &dyn TopicView) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = assignment
        .iter()
        .filter_map(|(id, ps)| {
            topics
                .name_of(*id)
                .map(|name| (name, ps.iter().copied().collect()))
        })
        .collect();
    out.sort();
    out
}

fn millis(ms: i32) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn as_millis(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
