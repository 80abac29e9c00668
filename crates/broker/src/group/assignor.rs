//! Server-side assignors for consumer groups under the KIP-848 protocol,
//! named as Kafka names them: `uniform` (the default) and `range`.
//!
//! An assignor maps each member, with the topics it subscribes to, to the
//! partitions it should own (the group's target assignment). The
//! coordinator then moves members towards that target one heartbeat at a
//! time, so an assignor that keeps partitions where they are (sticky) makes
//! rebalances cheap: only the partitions that must move are revoked.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The topics the group subscribes to: name → (topic id, partition count).
pub type SubscribedTopics = BTreeMap<String, (Uuid, i32)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub const DEFAULT: Assignor = Assignor::Uniform;

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member. `members` maps each member
    /// id to the names of the topics it subscribes to; `previous` is the
    /// target this replaces (the uniform assignor keeps what it can).
    pub fn assign(
        self,
        members: &BTreeMap<String, BTreeSet<String>>,
        topics: &SubscribedTopics,
        previous: &BTreeMap<String, Assignment>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(members, topics, previous),
            Assignor::Range => range(members, topics),
        }
    }
}

type Slot = (Uuid, i32);

/// Balances partition counts across members (within one of each other
/// where subscriptions allow), keeping every partition that can stay with
/// its previous owner.
fn uniform(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &SubscribedTopics,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    // Who may own each topic's partitions.
    let mut eligible: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for (member, subscribed) in members {
        for name in subscribed {
            if let Some((id, _)) = topics.get(name) {
                eligible.entry(*id).or_default().push(member);
            }
        }
    }
    let counts: BTreeMap<Uuid, i32> = topics.values().copied().collect();
    let count_of = |id: &Uuid| counts.get(id).copied().unwrap_or(0);
    let mut owned: BTreeMap<&str, BTreeSet<Slot>> = members
        .keys()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<Slot> = BTreeSet::new();

    // 1. Sticky: a member keeps what it had, if it still subscribes to it.
    for (member, assignment) in previous {
        let Some(mine) = owned.get_mut(member.as_str()) else {
            continue;
        };
        for (topic, partitions) in assignment {
            let Some(allowed) = eligible.get(topic) else {
                continue;
            };
            if !allowed.contains(&member.as_str()) {
                continue;
            }
            let count = count_of(topic);
            for &p in partitions.iter().filter(|&&p| p < count) {
                if taken.insert((*topic, p)) {
                    mine.insert((*topic, p));
                }
            }
        }
    }

    // 2. Every free partition goes to the least loaded member allowed it.
    for (id, allowed) in &eligible {
        for p in 0..count_of(id) {
            if taken.contains(&(*id, p)) {
                continue;
            }
            if let Some(member) = least_loaded(allowed, &owned, usize::MAX) {
                taken.insert((*id, p));
                if let Some(mine) = owned.get_mut(member) {
                    mine.insert((*id, p));
                }
            }
        }
    }

    // 3. Balance: move a partition from a member to one that owns at least
    // two fewer, while such a move exists. Each move lowers the sum of the
    // squared loads, so this ends.
    'balance: loop {
        let mut by_load: Vec<(&str, usize)> = owned.iter().map(|(m, s)| (*m, s.len())).collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (heavy, load) in by_load {
            let slots: Vec<Slot> = owned.get(heavy).into_iter().flatten().copied().collect();
            for slot in slots {
                let Some(allowed) = eligible.get(&slot.0) else {
                    continue;
                };
                if let Some(light) = least_loaded(allowed, &owned, load.saturating_sub(1)) {
                    if let Some(from) = owned.get_mut(heavy) {
                        from.remove(&slot);
                    }
                    if let Some(to) = owned.get_mut(light) {
                        to.insert(slot);
                    }
                    continue 'balance;
                }
            }
        }
        break;
    }

    owned
        .into_iter()
        .map(|(member, slots)| (member.to_string(), to_assignment(slots)))
        .collect()
}

/// Among `allowed`, the member owning the fewest partitions, if it owns
/// fewer than `below` (ties go to the smallest member id).
fn least_loaded<'a>(
    allowed: &[&'a str],
    owned: &BTreeMap<&str, BTreeSet<Slot>>,
    below: usize,
) -> Option<&'a str> {
    allowed
        .iter()
        .map(|m| (*m, owned.get(m).map_or(0, BTreeSet::len)))
        .filter(|(_, load)| *load < below)
        .min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)))
        .map(|(m, _)| m)
}

fn to_assignment(slots: BTreeSet<Slot>) -> Assignment {
    let mut out = Assignment::new();
    for (topic, p) in slots {
        out.entry(topic).or_default().insert(p);
    }
    out
}

/// For each topic, its subscribers (by member id) take contiguous ranges of
/// its partitions, the first ones one more when they do not divide evenly:
/// co-partitioned topics land together, as with the client-side range
/// assignor.
fn range(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &SubscribedTopics,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (name, (id, count)) in topics {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, subscribed)| subscribed.contains(name))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let count = (*count).max(0) as usize;
        let base = count / subscribers.len();
        let extra = count % subscribers.len();
        let mut next = 0usize;
        for (i, member) in subscribers.into_iter().enumerate() {
            let take = base + usize::from(i < extra);
            let partitions: BTreeSet<i32> = (next..next + take).map(|p| p as i32).collect();
            next += take;
            if !partitions.is_empty() {
                if let Some(assignment) = out.get_mut(member) {
                    assignment.insert(*id, partitions);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn subscribe(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(assignment: &BTreeMap<String, Assignment>) -> Vec<usize> {
        assignment
            .values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of every topic is owned exactly once.
    fn assert_complete(assignment: &BTreeMap<String, Assignment>, topics: &SubscribedTopics) {
        let mut seen = BTreeSet::new();
        for a in assignment.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t} {p} assigned twice");
                }
            }
        }
        let expected: usize = topics.values().map(|(_, c)| *c as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let topics = SubscribedTopics::from([("t".to_string(), (topic(1), 6))]);
        let two = subscribe(&[("a", &["t"]), ("b", &["t"])]);
        let first = Assignor::Uniform.assign(&two, &topics, &BTreeMap::new());
        assert_eq!(counts(&first), vec![3, 3]);
        assert_complete(&first, &topics);

        let three = subscribe(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let second = Assignor::Uniform.assign(&three, &topics, &first);
        assert_eq!(counts(&second), vec![2, 2, 2]);
        assert_complete(&second, &topics);
        // a and b each gave up exactly one partition, and kept the rest.
        for m in ["a", "b"] {
            let before = &first[m][&topic(1)];
            let after = &second[m][&topic(1)];
            assert!(after.is_subset(before));
            assert_eq!(after.len(), 2);
        }
    }

    #[test]
    fn uniform_respects_different_subscriptions() {
        let topics = SubscribedTopics::from([
            ("x".to_string(), (topic(1), 4)),
            ("y".to_string(), (topic(2), 2)),
        ]);
        let members = subscribe(&[("a", &["x"]), ("b", &["x", "y"]), ("c", &["y"])]);
        let out = Assignor::Uniform.assign(&members, &topics, &BTreeMap::new());
        assert_complete(&out, &topics);
        assert!(!out["a"].contains_key(&topic(2)));
        assert!(!out["c"].contains_key(&topic(1)));
        assert_eq!(counts(&out), vec![2, 2, 2]);
    }

    #[test]
    fn uniform_drops_partitions_that_no_longer_exist() {
        let topics = SubscribedTopics::from([("t".to_string(), (topic(1), 2))]);
        let members = subscribe(&[("a", &["t"])]);
        let previous = BTreeMap::from([(
            "a".to_string(),
            Assignment::from([(topic(1), BTreeSet::from([0, 1, 7]))]),
        )]);
        let out = Assignor::Uniform.assign(&members, &topics, &previous);
        assert_eq!(out["a"][&topic(1)], BTreeSet::from([0, 1]));
    }

    #[test]
    fn range_gives_contiguous_copartitioned_ranges() {
        let topics = SubscribedTopics::from([
            ("x".to_string(), (topic(1), 5)),
            ("y".to_string(), (topic(2), 5)),
        ]);
        let members = subscribe(&[("a", &["x", "y"]), ("b", &["x", "y"])]);
        let out = Assignor::Range.assign(&members, &topics, &BTreeMap::new());
        assert_complete(&out, &topics);
        assert_eq!(out["a"][&topic(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["a"][&topic(2)], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&topic(1)], BTreeSet::from([3, 4]));
    }
}
