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

mod classic_members {
    //! Classic members inside a consumer group, and conversions.

    use bytes::{BufMut, Bytes, BytesMut};

    use super::*;
    use crate::group::classic::JoinRequest;
    use crate::group::consumer_protocol;
    use crate::group::records::{StoredGroup, StoredMember};

    /// A v3 subscription as the Java classic consumer writes it.
    fn subscription(topics: &[&str], owned: &[(String, Vec<i32>)]) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        out.put_i32(topics.len() as i32);
        for t in topics {
            out.put_i16(t.len() as i16);
            out.put_slice(t.as_bytes());
        }
        out.put_i32(-1);
        out.put_i32(owned.len() as i32);
        for (t, ps) in owned {
            out.put_i16(t.len() as i16);
            out.put_slice(t.as_bytes());
            out.put_i32(ps.len() as i32);
            for p in ps {
                out.put_i32(*p);
            }
        }
        out.put_i32(-1);
        out.put_i16(-1);
        out.freeze()
    }

    /// A classic consumer of the cooperative protocol: it reports what it
    /// owns when it joins, gives up what its assignment no longer holds,
    /// and joins again when told to.
    struct ClassicClient {
        id: String,
        generation: i32,
        topics: Vec<String>,
        owned: Vec<(String, Vec<i32>)>,
    }

    impl ClassicClient {
        fn new(id: &str, topics: &[&str]) -> ClassicClient {
            ClassicClient {
                id: id.to_string(),
                generation: -1,
                topics: topics.iter().map(|t| t.to_string()).collect(),
                owned: Vec::new(),
            }
        }

        fn join_request(&self) -> JoinRequest {
            let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            JoinRequest {
                member_id: self.id.clone(),
                instance_id: None,
                client_id: "java".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout: Duration::from_secs(45),
                rebalance_timeout: Duration::from_secs(60),
                protocol_type: "consumer".into(),
                protocols: vec![(
                    "cooperative-sticky".into(),
                    subscription(&names, &self.owned),
                )],
                require_known_member_id: true,
                supports_skip_assignment: true,
            }
        }

        /// JoinGroup then SyncGroup.
        fn rejoin(&mut self, group: &mut ConsumerGroup, topics: &Topics, now: Instant) {
            let joined = group
                .classic_join(self.join_request(), &limits(), topics, now)
                .expect("join");
            assert_eq!(joined.leader, "", "the broker assigns; no member leads");
            assert_eq!(joined.protocol.as_deref(), Some("cooperative-sticky"));
            self.generation = joined.generation;
            let bytes = group
                .classic_sync(
                    &self.id,
                    None,
                    self.generation,
                    (Some("consumer"), Some("cooperative-sticky")),
                    topics,
                    now,
                )
                .expect("sync");
            self.owned = consumer_protocol::decode_assignment(&bytes).expect("assignment");
        }

        /// Heartbeats; joins again (as many times as asked) when told to.
        fn beat(&mut self, group: &mut ConsumerGroup, topics: &Topics, now: Instant) {
            for _ in 0..5 {
                match group.classic_heartbeat(&self.id, None, self.generation, now) {
                    Ok(()) => return,
                    Err(BrokerError::RebalanceInProgress) => self.rejoin(group, topics, now),
                    Err(e) => panic!("heartbeat: {e}"),
                }
            }
        }

        fn as_client(&self, topics: &Topics) -> Client {
            let mut owned = Assignment::new();
            for (t, ps) in &self.owned {
                let (id, _) = topics.topic(t).expect("topic");
                owned.entry(id).or_default().extend(ps);
            }
            Client {
                owned,
                ..Client::new(&self.id, &[])
            }
        }
    }

    fn classic_group_of(members: &[(&str, &[i32])], generation: i32) -> StoredGroup {
        StoredGroup {
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            leader: members[0].0.to_string(),
            generation,
            members: members
                .iter()
                .map(|(id, partitions)| StoredMember {
                    member_id: id.to_string(),
                    instance_id: None,
                    client_id: "java".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 45_000,
                    rebalance_timeout_ms: 60_000,
                    protocols: vec![("range".into(), subscription(&["t"], &[]))],
                    assignment: consumer_protocol::encode_assignment(
                        3,
                        &[("t".to_string(), partitions.to_vec())],
                    ),
                })
                .collect(),
        }
    }

    #[test]
    fn a_classic_group_becomes_a_consumer_group_without_moving_anything_yet() {
        let topics = topics(&[("t", 1, 4)]);
        let now = Instant::now();
        let stored = classic_group_of(&[("a", &[0, 1]), ("b", &[2, 3])], 7);
        let group = ConsumerGroup::from_classic("g", &stored, &topics, now).expect("converts");
        assert_eq!(group.epoch(), 7);
        assert_eq!(group.state_name(), "Stable");
        let view = group.view();
        assert!(view
            .members
            .iter()
            .all(|m| m.classic && m.member_epoch == 7));
        let a = view.members.iter().find(|m| m.member_id == "a").unwrap();
        assert_eq!(a.assignment[&topic_id(1)], BTreeSet::from([0, 1]));
        // Offsets commits of classic members are checked as generations.
        assert!(matches!(
            group.check_member_epoch("a", 6),
            Err(BrokerError::IllegalGeneration(6, 7))
        ));

        let mut other = stored.clone();
        other.protocol_type = "connect".into();
        assert!(ConsumerGroup::from_classic("g", &other, &topics, now).is_none());
        let mut garbled = stored;
        garbled.members[0].protocols[0].1 = Bytes::from_static(b"\0\x01\x7f");
        assert!(ConsumerGroup::from_classic("g", &garbled, &topics, now).is_none());
    }

    #[test]
    fn classic_and_consumer_members_share_partitions_without_overlap() {
        let topics = topics(&[("t", 1, 6)]);
        let now = Instant::now();
        let stored = classic_group_of(&[("a", &[0, 1, 2]), ("b", &[3, 4, 5])], 3);
        let mut group = ConsumerGroup::from_classic("g", &stored, &topics, now).unwrap();
        let mut a = ClassicClient::new("a", &["t"]);
        a.owned = vec![("t".into(), vec![0, 1, 2])];
        a.generation = 3;
        let mut b = ClassicClient::new("b", &["t"]);
        b.owned = vec![("t".into(), vec![3, 4, 5])];
        b.generation = 3;

        // A KIP-848 member joins: it gets nothing the classic members hold.
        let mut c = Client::new("c", &["t"]);
        c.beat(&mut group, &topics, now);
        for _ in 0..10 {
            a.beat(&mut group, &topics, now);
            b.beat(&mut group, &topics, now);
            c.beat(&mut group, &topics, now);
            let all = [a.as_client(&topics), b.as_client(&topics), c.clone()];
            assert_no_overlap(&all);
        }
        assert_eq!(group.state_name(), "Stable", "{:?}", group.view());
        let all = [a.as_client(&topics), b.as_client(&topics), c.clone()];
        assert_eq!(assert_no_overlap(&all), 6);
        assert!(all.iter().all(|m| m.count() == 2), "{all:?}");

        // The KIP-848 member leaves: only classic members are left.
        assert!(!group.only_classic_members());
        c.epoch = LEAVE_EPOCH;
        group
            .heartbeat(c.request(), 1, &limits(), &topics, now)
            .expect("leave");
        assert!(group.only_classic_members());
        let classic = group.to_classic(&topics).expect("downgrades");
        assert_eq!(classic.protocol, "cooperative-sticky");
        assert_eq!(classic.generation, group.epoch());
        assert_eq!(classic.members.len(), 2);
        let mut assigned = 0;
        for m in &classic.members {
            let partitions = consumer_protocol::decode_assignment(&m.assignment).unwrap();
            assigned += partitions.iter().map(|(_, ps)| ps.len()).sum::<usize>();
        }
        // Their targets as they were; the rebalance that follows the
        // conversion hands out the departed member's partitions.
        assert_eq!(assigned, 4);
    }

    #[test]
    fn classic_requests_are_checked_as_kafka_checks_them() {
        let topics = topics(&[("t", 1, 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let mut c = Client::new("c", &["t"]);
        c.beat(&mut group, &topics, now);

        // A dynamic member without an id first learns one (KIP-394).
        let mut fresh = ClassicClient::new("", &["t"]);
        let id = match group.classic_join(fresh.join_request(), &limits(), &topics, now) {
            Err(BrokerError::MemberIdRequired(id)) => id,
            other => panic!("{other:?}"),
        };
        fresh.id = id;
        fresh.rejoin(&mut group, &topics, now);

        let mut wrong_type = fresh.join_request();
        wrong_type.protocol_type = "connect".into();
        assert!(matches!(
            group.classic_join(wrong_type, &limits(), &topics, now),
            Err(BrokerError::InconsistentGroupProtocol(_))
        ));
        let mut garbled = fresh.join_request();
        garbled.protocols[0].1 = Bytes::from_static(b"\0");
        assert!(matches!(
            group.classic_join(garbled, &limits(), &topics, now),
            Err(BrokerError::InconsistentGroupProtocol(_))
        ));
        assert!(matches!(
            group.classic_heartbeat(&fresh.id, None, fresh.generation + 1, now),
            Err(BrokerError::IllegalGeneration(..))
        ));
        assert!(matches!(
            group.classic_heartbeat("nobody", None, 1, now),
            Err(BrokerError::UnknownMemberId)
        ));
        // A KIP-848 member's id is not a classic member's.
        assert!(matches!(
            group.classic_heartbeat("c", None, c.epoch, now),
            Err(BrokerError::UnknownMemberId)
        ));
        assert!(matches!(
            group.classic_sync(
                &fresh.id,
                None,
                fresh.generation,
                (Some("consumer"), Some("range")),
                &topics,
                now
            ),
            Err(BrokerError::InconsistentGroupProtocol(_))
        ));
        assert!(matches!(
            group.classic_leave("c", None),
            Err(BrokerError::UnknownMemberId)
        ));
        group.classic_leave(&fresh.id, None).expect("leaves");
        assert!(!group.has_member(&fresh.id));
    }

    #[test]
    fn a_classic_member_that_does_not_sync_in_time_is_removed() {
        let topics = topics(&[("t", 1, 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let mut c = Client::new("c", &["t"]);
        c.beat(&mut group, &topics, now);
        let mut join = ClassicClient::new("lazy", &["t"]).join_request();
        // Its session outlasts its rebalance timeout (60 s): what removes
        // it is the SyncGroup that never came.
        join.session_timeout = Duration::from_secs(120);
        group
            .classic_join(join, &limits(), &topics, now)
            .expect("join");
        let lazy = "lazy".to_string();
        assert!(!group.tick(now + Duration::from_secs(59)).contains(&lazy));
        assert!(group.tick(now + Duration::from_secs(61)).contains(&lazy));
    }
}
