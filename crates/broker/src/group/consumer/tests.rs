use std::collections::BTreeMap;

use super::*;

struct Topics(BTreeMap<String, (Uuid, i32)>);

impl TopicView for Topics {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).copied()
    }
    fn name_of(&self, id: Uuid) -> Option<String> {
        self.0
            .iter()
            .find(|(_, t)| t.0 == id)
            .map(|(n, _)| n.clone())
    }
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

fn topic_id(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn topics(list: &[(&str, u8, i32)]) -> Topics {
    Topics(
        list.iter()
            .map(|(name, id, count)| (name.to_string(), (topic_id(*id), *count)))
            .collect(),
    )
}

fn limits() -> ConsumerLimits {
    ConsumerLimits {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        reconcile_heartbeat_interval: Duration::from_millis(100),
        max_size: 10,
    }
}

/// A client as the Java consumer behaves: it owns what its last answer
/// assigned, and reports it on every heartbeat.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    epoch: i32,
    instance: Option<String>,
    subscription: Vec<String>,
    regex: Option<String>,
    owned: Assignment,
}

impl Client {
    fn new(id: &str, topics: &[&str]) -> Client {
        Client {
            id: id.to_string(),
            epoch: 0,
            instance: None,
            subscription: topics.iter().map(|t| t.to_string()).collect(),
            regex: None,
            owned: Assignment::new(),
        }
    }

    fn request(&self) -> Heartbeat {
        Heartbeat {
            member_id: self.id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance.clone(),
            rebalance_timeout_ms: 60_000,
            subscribed_names: (self.epoch == 0 || self.regex.is_none())
                .then(|| self.subscription.clone()),
            subscribed_regex: self.regex.clone(),
            owned: Some(
                self.owned
                    .iter()
                    .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                    .collect(),
            ),
            ..Heartbeat::default()
        }
    }

    fn beat(&mut self, group: &mut ConsumerGroup, topics: &Topics, now: Instant) -> HeartbeatReply {
        let reply = group
            .heartbeat(self.request(), 1, &limits(), topics, now)
            .expect("heartbeat");
        self.epoch = reply.member_epoch;
        if let Some(assignment) = &reply.assignment {
            self.owned = assignment.clone();
        }
        reply
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

/// Heartbeats every client until the group is stable.
fn settle(group: &mut ConsumerGroup, clients: &mut [Client], topics: &Topics, now: Instant) {
    for _ in 0..20 {
        for c in clients.iter_mut() {
            c.beat(group, topics, now);
        }
        if group.state_name() == "Stable" {
            return;
        }
    }
    panic!("group did not settle: {:?}", group.view());
}

/// No partition is owned twice at any time, and when settled every
/// partition is owned.
fn assert_no_overlap(clients: &[Client]) -> usize {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}/{p} owned twice");
            }
        }
    }
    seen.len()
}

#[test]
fn three_members_split_six_partitions_without_overlap() {
    let topics = topics(&[("orders", 1, 6)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut clients = vec![Client::new("a", &["orders"])];
    clients[0].beat(&mut group, &topics, now);
    assert_eq!(clients[0].count(), 6);
    for id in ["b", "c"] {
        let mut c = Client::new(id, &["orders"]);
        c.beat(&mut group, &topics, now);
        clients.push(c);
        // Every step of the handover keeps partitions exclusive.
        for _ in 0..5 {
            for c in clients.iter_mut() {
                c.beat(&mut group, &topics, now);
                assert_no_overlap(&clients_snapshot(&group, &topics));
            }
        }
    }
    settle(&mut group, &mut clients, &topics, now);
    assert_eq!(assert_no_overlap(&clients), 6);
    assert!(clients.iter().all(|c| c.count() == 2));
    let epoch = group.epoch();
    assert!(clients.iter().all(|c| c.epoch == epoch));
}

/// What the coordinator believes each member holds (assigned plus pending
/// revocation): never overlapping.
fn clients_snapshot(group: &ConsumerGroup, _topics: &Topics) -> Vec<Client> {
    group
        .members
        .values()
        .map(|m| {
            let mut owned = m.assigned.clone();
            for (t, ps) in &m.pending_revocation {
                owned.entry(*t).or_default().extend(ps);
            }
            Client {
                id: m.id.clone(),
                epoch: m.epoch,
                instance: None,
                subscription: vec![],
                regex: None,
                owned,
            }
        })
        .collect()
}

#[test]
fn a_new_member_waits_for_partitions_until_they_are_revoked() {
    let topics = topics(&[("t", 1, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &["t"]);
    a.beat(&mut group, &topics, now);
    let mut b = Client::new("b", &["t"]);
    let reply = b.beat(&mut group, &topics, now);
    // a still owns both: b gets the new epoch but nothing yet.
    assert_eq!(b.count(), 0);
    assert!(reply.heartbeat_interval < limits().heartbeat_interval);
    // a learns it must give one up; it keeps its old epoch meanwhile.
    let old_epoch = a.epoch;
    a.beat(&mut group, &topics, now);
    assert_eq!(a.count(), 1);
    assert_eq!(a.epoch, old_epoch);
    // Reporting it revoked moves a to the new epoch; b then gets it.
    a.beat(&mut group, &topics, now);
    assert_eq!(a.epoch, group.epoch());
    b.beat(&mut group, &topics, now);
    assert_eq!(b.count(), 1);
    assert_eq!(group.state_name(), "Stable");
}

#[test]
fn leaving_and_expired_members_hand_their_partitions_on() {
    let topics = topics(&[("t", 1, 4)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    settle(&mut group, &mut clients, &topics, now);

    // b leaves: a gets all four on its next heartbeat.
    let mut leave = clients[1].request();
    leave.member_epoch = LEAVE_EPOCH;
    let reply = group
        .heartbeat(leave, 1, &limits(), &topics, now)
        .expect("leave");
    assert_eq!(reply.member_epoch, LEAVE_EPOCH);
    clients.truncate(1);
    settle(&mut group, &mut clients, &topics, now);
    assert_eq!(clients[0].count(), 4);

    // c joins, then a stops heartbeating: after the session timeout c
    // owns everything.
    let mut c = Client::new("c", &["t"]);
    c.beat(&mut group, &topics, now);
    let later = now + limits().session_timeout;
    c.beat(&mut group, &topics, now + limits().session_timeout / 2);
    assert_eq!(group.tick(later), vec!["a".to_string()]);
    c.beat(&mut group, &topics, later);
    assert_eq!(c.count(), 4);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let topics = topics(&[("t", 1, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &["t"]);
    a.beat(&mut group, &topics, now);
    let mut b = Client::new("b", &["t"]);
    b.beat(&mut group, &topics, now);
    // a is asked to revoke but keeps reporting both partitions.
    let stuck = a.request();
    group
        .heartbeat(stuck.clone(), 1, &limits(), &topics, now)
        .expect("heartbeat");
    let mut again = stuck;
    again.member_epoch = a.epoch;
    group
        .heartbeat(again, 1, &limits(), &topics, now)
        .expect("heartbeat");
    let removed = group.tick(now + Duration::from_secs(61));
    assert!(removed.contains(&"a".to_string()), "{removed:?}");
}

#[test]
fn a_static_member_restarts_and_keeps_its_partitions() {
    let topics = topics(&[("t", 1, 4)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &["t"]);
    a.instance = Some("worker-a".into());
    let mut b = Client::new("b", &["t"]);
    b.instance = Some("worker-b".into());
    let mut clients = vec![a, b];
    settle(&mut group, &mut clients, &topics, now);
    let epoch = group.epoch();
    let kept = clients[0].owned.clone();

    // worker-a leaves as a static member...
    let mut leave = clients[0].request();
    leave.member_epoch = STATIC_LEAVE_EPOCH;
    group
        .heartbeat(leave, 1, &limits(), &topics, now)
        .expect("static leave");
    // ...and while it is away, a new process cannot take its id twice...
    let mut restarted = Client::new("a2", &["t"]);
    restarted.instance = Some("worker-b".into());
    let err = group
        .heartbeat(restarted.request(), 1, &limits(), &topics, now)
        .expect_err("instance still in use");
    assert!(matches!(err, BrokerError::UnreleasedInstanceId(_)));
    // ...but its own restart gets the same partitions, with no new epoch.
    restarted.instance = Some("worker-a".into());
    restarted.beat(&mut group, &topics, now);
    assert_eq!(restarted.owned, kept);
    assert_eq!(group.epoch(), epoch);
    assert_eq!(restarted.epoch, epoch);
}

#[test]
fn epochs_that_do_not_match_are_fenced() {
    let topics = topics(&[("t", 1, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &["t"]);
    a.beat(&mut group, &topics, now);
    let mut ahead = a.request();
    ahead.member_epoch = a.epoch + 5;
    let err = group
        .heartbeat(ahead, 1, &limits(), &topics, now)
        .expect_err("fenced");
    assert!(matches!(err, BrokerError::FencedMemberEpoch(..)));
    let mut unknown = a.request();
    unknown.member_id = "nobody".into();
    let err = group
        .heartbeat(unknown, 1, &limits(), &topics, now)
        .expect_err("unknown");
    assert!(matches!(err, BrokerError::UnknownMemberId));
    // A commit at the member's epoch passes; an older one is stale.
    group
        .check_member_epoch("a", a.epoch)
        .expect("current epoch");
    assert!(matches!(
        group.check_member_epoch("a", a.epoch - 1),
        Err(BrokerError::StaleMemberEpoch(..))
    ));
}

#[test]
fn regex_subscriptions_follow_new_topics() {
    let mut view = topics(&[("orders-eu", 1, 2), ("payments", 2, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &[]);
    a.subscription.clear();
    a.regex = Some("orders-.*".into());
    a.beat(&mut group, &view, now);
    assert_eq!(
        a.owned.keys().copied().collect::<Vec<_>>(),
        vec![topic_id(1)]
    );
    view.0.insert("orders-us".into(), (topic_id(3), 3));
    let epoch = group.epoch();
    a.beat(&mut group, &view, now);
    assert!(group.epoch() > epoch);
    assert_eq!(a.count(), 5);
}

#[test]
fn partitions_added_to_a_topic_are_assigned() {
    let mut view = topics(&[("t", 1, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut a = Client::new("a", &["t"]);
    a.beat(&mut group, &view, now);
    view.0.insert("t".into(), (topic_id(1), 5));
    a.beat(&mut group, &view, now);
    assert_eq!(a.count(), 5);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let view = topics(&[("t", 1, 2)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let join = Client::new("a", &["t"]).request();
    type Expected = fn(&BrokerError) -> bool;
    let cases: Vec<(Heartbeat, Expected)> = vec![
        (
            Heartbeat {
                rebalance_timeout_ms: -1,
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
        (
            Heartbeat {
                subscribed_names: None,
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
        (
            Heartbeat {
                owned: None,
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
        (
            Heartbeat {
                member_id: String::new(),
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
        (
            Heartbeat {
                member_epoch: -3,
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
        (
            Heartbeat {
                server_assignor: Some("sticky".into()),
                ..join.clone()
            },
            |e| matches!(e, BrokerError::UnsupportedAssignor(_)),
        ),
        (
            Heartbeat {
                subscribed_regex: Some("(".into()),
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRegularExpression(_)),
        ),
        (
            Heartbeat {
                instance_id: Some(String::new()),
                ..join.clone()
            },
            |e| matches!(e, BrokerError::InvalidRequest(_)),
        ),
    ];
    for (request, expected) in cases {
        let err = group
            .heartbeat(request.clone(), 1, &limits(), &view, now)
            .expect_err("refused");
        assert!(expected(&err), "{request:?}: {err:?}");
        assert!(group.is_empty());
        assert_eq!(group.epoch(), 0);
    }
}

#[test]
fn the_group_survives_being_stored_and_restored() {
    let view = topics(&[("t", 1, 4)]);
    let mut group = ConsumerGroup::new("g");
    let now = Instant::now();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    settle(&mut group, &mut clients, &view, now);
    let stored = group.stored();
    let encoded = super::super::records::encode_group_value(
        &super::super::records::StoredGroupValue::Consumer(stored),
    );
    let Some(super::super::records::StoredGroupValue::Consumer(decoded)) =
        super::super::records::decode_group_value(&encoded)
    else {
        panic!("does not decode");
    };
    let mut restored = ConsumerGroup::restore("g", decoded, &limits(), now);
    // The members go on heartbeating with their epochs and partitions.
    for c in clients.iter_mut() {
        let before = c.owned.clone();
        c.beat(&mut restored, &view, now);
        assert_eq!(c.owned, before);
    }
    assert_eq!(restored.state_name(), "Stable");
}
