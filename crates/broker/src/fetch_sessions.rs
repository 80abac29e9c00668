//! Fetch sessions (KIP-227): a consumer or follower of many partitions
//! sends the whole list once, then only what changed, and hears back only
//! about partitions with something new.
//!
//! A request names its session by id and epoch:
//! - id 0, epoch -1: no session, a full fetch (the response's id is 0);
//! - epoch 0: a new session from this full request (closing `id` if it
//!   is not 0); the response carries the new id, or 0 when the cache is
//!   full of sessions used recently, and the client goes on with full
//!   fetches;
//! - epoch -1 with an id: the session is closed and this is a full fetch;
//! - epoch > 0: an incremental fetch in session `id`, which must be the
//!   epoch the session expects next (INVALID_FETCH_SESSION_EPOCH
//!   otherwise; FETCH_SESSION_ID_NOT_FOUND for an unknown id). Its
//!   partitions are added to the session or update their fetch offsets,
//!   its forgotten topics leave it, and the response holds only the
//!   partitions with records, an error, or a high watermark, last stable
//!   offset or log start offset other than the one last sent.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::FetchRequest;
use uuid::Uuid;

use crate::error::{BrokerError, Result};
use crate::handlers::fetch::{FetchReply, FIRST_VERSION_WITH_TOPIC_IDS};

/// A partition as a session names it: topic name (before Fetch v13) or
/// id (from v13), and index.
type PartitionKey = (String, Uuid, i32);

/// What a response last told the client about a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

struct Session {
    next_epoch: i32,
    /// Created by a Fetch v13+ (topics named by id); the session keeps to
    /// one way of naming them.
    topic_ids: bool,
    /// Every partition the session reads, in the order first asked for.
    topics: Vec<FetchTopic>,
    partitions: usize,
    sent: HashMap<PartitionKey, Sent>,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    sessions: HashMap<i32, Session>,
}

pub struct FetchSessions {
    state: Mutex<State>,
    max_sessions: usize,
    max_partitions: usize,
    eviction: Duration,
}

/// What one fetch reads, once its session is applied.
pub struct FetchPlan {
    pub topics: Vec<FetchTopic>,
    /// The session id the response carries (0 for none).
    pub session_id: i32,
    /// Only partitions with something new go in the response.
    pub incremental: bool,
}

impl FetchSessions {
    /// `max_sessions` sessions at most, each of at most `max_partitions`
    /// partitions; a full cache gives up its least recently used session
    /// once it has been idle for `eviction`.
    pub fn new(max_sessions: usize, max_partitions: usize, eviction: Duration) -> FetchSessions {
        FetchSessions {
            state: Mutex::new(State::default()),
            max_sessions,
            max_partitions,
            eviction,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partitions `body` reads, after opening, closing or updating its
    /// session.
    pub fn plan(&self, body: &FetchRequest, version: i16) -> Result<FetchPlan> {
        let topic_ids = version >= FIRST_VERSION_WITH_TOPIC_IDS;
        let full = |session_id| FetchPlan {
            topics: body.topics.clone(),
            session_id,
            incremental: false,
        };
        let mut state = self.state();
        match (body.session_id, body.session_epoch) {
            (0, -1) => Ok(full(0)),
            (id, -1) => {
                state.sessions.remove(&id);
                Ok(full(0))
            }
            (id, 0) => {
                state.sessions.remove(&id);
                match self.create(&mut state, body, topic_ids) {
                    Some((id, topics)) => Ok(FetchPlan {
                        topics,
                        session_id: id,
                        incremental: false,
                    }),
                    None => Ok(full(0)),
                }
            }
            (id, epoch) if epoch > 0 => {
                let session = state
                    .sessions
                    .get_mut(&id)
                    .ok_or(BrokerError::FetchSessionIdNotFound)?;
                if epoch != session.next_epoch {
                    return Err(BrokerError::InvalidFetchSessionEpoch);
                }
                if topic_ids != session.topic_ids {
                    return Err(BrokerError::FetchSessionTopicIdError);
                }
                session.next_epoch = epoch.checked_add(1).unwrap_or(1);
                session.last_used = Instant::now();
                session.apply(body);
                if session.partitions > self.max_partitions {
                    // More than the broker can hold: the client starts
                    // over with a full fetch.
                    state.sessions.remove(&id);
                    return Err(BrokerError::FetchSessionIdNotFound);
                }
                Ok(FetchPlan {
                    topics: session.topics.clone(),
                    session_id: id,
                    incremental: true,
                })
            }
            _ => Err(BrokerError::InvalidFetchSessionEpoch),
        }
    }

    /// A new session for `body`'s partitions (each once), if the cache has
    /// room or a session idle long enough to give up: its id and
    /// partitions.
    fn create(
        &self,
        state: &mut State,
        body: &FetchRequest,
        topic_ids: bool,
    ) -> Option<(i32, Vec<FetchTopic>)> {
        let asked: usize = body.topics.iter().map(|t| t.partitions.len()).sum();
        if self.max_sessions == 0 || asked > self.max_partitions {
            return None;
        }
        if state.sessions.len() >= self.max_sessions {
            let (&oldest, session) = state.sessions.iter().min_by_key(|(_, s)| s.last_used)?;
            if session.last_used.elapsed() < self.eviction {
                return None;
            }
            state.sessions.remove(&oldest);
        }
        // Random ids, as Kafka's: a client that kept an id across a broker
        // restart must not land in another client's session.
        let mut id = random_id();
        while state.sessions.contains_key(&id) {
            id = random_id();
        }
        let mut session = Session {
            next_epoch: 1,
            topic_ids,
            topics: Vec::new(),
            partitions: 0,
            sent: HashMap::new(),
            last_used: Instant::now(),
        };
        session.apply(body);
        let topics = session.topics.clone();
        state.sessions.insert(id, session);
        Some((id, topics))
    }

    /// Records what the response tells the client and, in an incremental
    /// fetch, leaves out the partitions with nothing new (and their
    /// records' regions, which are empty).
    pub fn finish(&self, plan: &FetchPlan, reply: &mut FetchReply) {
        let (response, regions) = reply;
        response.session_id = plan.session_id;
        if plan.session_id == 0 {
            return;
        }
        let mut state = self.state();
        let Some(session) = state.sessions.get_mut(&plan.session_id) else {
            return;
        };
        let mut kept_regions = Vec::with_capacity(regions.len());
        let mut fed: Vec<PartitionKey> = Vec::new();
        let mut region_iter = std::mem::take(regions).into_iter();
        for topic in &mut response.responses {
            let name = topic.topic.0.to_string();
            let topic_id = topic.topic_id;
            topic.partitions.retain(|data| {
                let region = region_iter.next().flatten();
                let key = (name.clone(), topic_id, data.partition_index);
                let now = Sent {
                    high_watermark: data.high_watermark,
                    last_stable_offset: data.last_stable_offset,
                    log_start_offset: data.log_start_offset,
                };
                let changed = session.sent.get(&key) != Some(&now);
                let keep = !plan.incremental
                    || region.as_ref().is_some_and(|r| !r.is_empty())
                    || data.error_code != 0
                    || changed;
                if region.as_ref().is_some_and(|r| !r.is_empty()) {
                    fed.push(key.clone());
                }
                if keep {
                    session.sent.insert(key, now);
                    kept_regions.push(region);
                }
                keep
            });
        }
        response.responses.retain(|t| !t.partitions.is_empty());
        *regions = kept_regions;
        if plan.incremental && !fed.is_empty() {
            session.rotate(&fed);
        }
    }
}

/// A positive session id (0 means none).
fn random_id() -> i32 {
    let bytes = Uuid::new_v4().into_bytes();
    let id = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & i32::MAX;
    id.max(1)
}

impl Session {
    /// Moves the partitions that just returned records (and their topics)
    /// to the end of the session, as Kafka does, so that under a total
    /// `max_bytes` the partitions after them get their turn next time.
    fn rotate(&mut self, fed: &[PartitionKey]) {
        let with_records = |topic: &FetchTopic, partition: i32| {
            fed.iter().any(|(name, id, index)| {
                *index == partition && topic.topic.0.as_str() == name && topic.topic_id == *id
            })
        };
        let mut moved_topics = Vec::new();
        let mut index = 0;
        while index < self.topics.len() {
            let topic = &mut self.topics[index];
            let (fed, starved): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
                .into_iter()
                .partition(|p| with_records(topic, p.partition));
            let any = !fed.is_empty();
            topic.partitions = starved;
            topic.partitions.extend(fed);
            if any {
                moved_topics.push(self.topics.remove(index));
            } else {
                index += 1;
            }
        }
        self.topics.extend(moved_topics);
    }

    /// Adds the request's partitions (or updates their fetch positions)
    /// and drops its forgotten ones.
    fn apply(&mut self, body: &FetchRequest) {
        for asked in &body.topics {
            let index = match self
                .topics
                .iter()
                .position(|t| t.topic == asked.topic && t.topic_id == asked.topic_id)
            {
                Some(i) => i,
                None => {
                    let mut topic = asked.clone();
                    topic.partitions.clear();
                    self.topics.push(topic);
                    self.topics.len() - 1
                }
            };
            let topic = &mut self.topics[index];
            for partition in &asked.partitions {
                match topic
                    .partitions
                    .iter_mut()
                    .find(|p| p.partition == partition.partition)
                {
                    Some(known) => *known = partition.clone(),
                    None => {
                        topic.partitions.push(partition.clone());
                        self.partitions += 1;
                    }
                }
            }
        }
        for forgotten in &body.forgotten_topics_data {
            let name = forgotten.topic.0.to_string();
            if let Some(topic) = self
                .topics
                .iter_mut()
                .find(|t| t.topic == forgotten.topic && t.topic_id == forgotten.topic_id)
            {
                let before = topic.partitions.len();
                topic
                    .partitions
                    .retain(|p| !forgotten.partitions.contains(&p.partition));
                self.partitions -= before - topic.partitions.len();
            }
            for partition in &forgotten.partitions {
                self.sent
                    .remove(&(name.clone(), forgotten.topic_id, *partition));
            }
        }
        self.topics.retain(|t| !t.partitions.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::FetchPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn full_fetch(partitions: &[i32]) -> FetchRequest {
        let mut topic = FetchTopic::default();
        topic.topic = TopicName(StrBytes::from_static_str("t"));
        topic.partitions = partitions
            .iter()
            .map(|&index| {
                let mut p = FetchPartition::default();
                p.partition = index;
                p
            })
            .collect();
        let mut request = FetchRequest::default();
        request.session_epoch = 0;
        request.topics = vec![topic];
        request
    }

    #[test]
    fn a_full_cache_gives_way_only_to_sessions_idle_long_enough() {
        let patient = FetchSessions::new(2, 100, Duration::from_secs(3600));
        let first = patient
            .plan(&full_fetch(&[0]), 12)
            .expect("plan")
            .session_id;
        let second = patient
            .plan(&full_fetch(&[1]), 12)
            .expect("plan")
            .session_id;
        assert!(first > 0 && second > 0 && first != second);
        // Both used recently: no room, a sessionless full fetch.
        let third = patient.plan(&full_fetch(&[2]), 12).expect("plan");
        assert_eq!(third.session_id, 0);
        assert_eq!(third.topics[0].partitions.len(), 1);

        let eager = FetchSessions::new(1, 100, Duration::ZERO);
        let old = eager.plan(&full_fetch(&[0]), 12).expect("plan").session_id;
        let new = eager.plan(&full_fetch(&[1]), 12).expect("plan").session_id;
        assert!(new > 0 && new != old);
        let mut incremental = full_fetch(&[]);
        incremental.session_id = old;
        incremental.session_epoch = 1;
        assert!(matches!(
            eager.plan(&incremental, 12),
            Err(BrokerError::FetchSessionIdNotFound)
        ));
    }

    #[test]
    fn a_session_holds_each_partition_once_and_keeps_its_way_of_naming_topics() {
        let sessions = FetchSessions::new(10, 100, Duration::from_secs(3600));
        let plan = sessions.plan(&full_fetch(&[0, 1, 0]), 12).expect("plan");
        assert_eq!(
            plan.topics[0].partitions.len(),
            2,
            "a partition asked twice"
        );
        let mut incremental = full_fetch(&[2]);
        incremental.session_id = plan.session_id;
        incremental.session_epoch = 1;
        assert!(matches!(
            sessions.plan(&incremental, 13),
            Err(BrokerError::FetchSessionTopicIdError)
        ));
        // The epoch was not used up by the refused request.
        let next = sessions.plan(&incremental, 12).expect("plan");
        assert!(next.incremental);
        let indexes: Vec<i32> = next.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(indexes, vec![0, 1, 2]);
    }

    #[test]
    fn a_session_may_not_grow_past_the_partition_limit() {
        let sessions = FetchSessions::new(10, 3, Duration::from_secs(3600));
        let id = sessions
            .plan(&full_fetch(&[0, 1]), 12)
            .expect("plan")
            .session_id;
        let mut more = full_fetch(&[2, 3]);
        more.session_id = id;
        more.session_epoch = 1;
        assert!(matches!(
            sessions.plan(&more, 12),
            Err(BrokerError::FetchSessionIdNotFound)
        ));
        assert_eq!(
            sessions
                .plan(&full_fetch(&[0, 1, 2, 3]), 12)
                .expect("plan")
                .session_id,
            0
        );
    }
}
