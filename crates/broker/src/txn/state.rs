//! One transactional id's transaction, as Kafka's transaction coordinator
//! keeps it (`TransactionMetadata`): its producer id and epoch, its state,
//! the partitions its open transaction wrote to, and its timeout.
//!
//! A state machine without I/O or clocks (every call takes `now_ms`), like
//! the group state machines: each call checks a request against the
//! current state and returns the next state, which the coordinator makes
//! durable in `__transaction_state` before it answers or acts on it.
//!
//! ```text
//! Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!                            │    └──EndTxn(abort)───▶ PrepareAbort  ──markers──▶ CompleteAbort
//!                            └──timeout / InitProducerId: epoch bumped, then PrepareAbort
//! Complete* ──AddPartitions──▶ Ongoing;  InitProducerId in Empty/Complete*: epoch + 1
//! ```
//!
//! Transactions V2 (KIP-890) changes two things. Partitions join the
//! transaction implicitly, by the producer's first write to them (Produce
//! v12+, TxnOffsetCommit v5+), instead of AddPartitionsToTxn. And every
//! EndTxn (v5+) bumps the epoch: the markers carry the new epoch, so a late
//! write of the finished transaction is fenced in each partition, and the
//! producer is answered with the epoch for its next transaction. A retried
//! EndTxn therefore arrives with the epoch just below the current one.

use std::collections::BTreeSet;

use crate::error::{BrokerError, Result};

/// Kafka's transaction states (ListTransactions, DescribeTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// Markers are being written: the transaction's outcome is decided.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The highest epoch a producer id may reach before a new id is needed.
pub const MAX_EPOCH: i16 = i16::MAX - 1;

/// A partition a transaction wrote to.
pub type TopicPartition = (String, i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhausted), so that
    /// a retried InitProducerId is recognised; -1 if none.
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The producer id that replaces `producer_id` when the transaction
    /// being ended completes (a V2 epoch bump exhausted the epoch); -1 if
    /// none.
    pub next_producer_id: i64,
    /// The open (or last) transaction speaks Transactions V2: its EndTxn
    /// bumps the epoch.
    pub v2: bool,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began (its first AddPartitions); -1 if none.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// What InitProducerId does for an existing transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The next metadata to store and answer with.
    Ready(TxnMetadata),
    /// A transaction is open: it must be aborted (with the epoch bumped,
    /// which fences the old producer) before the caller retries; the
    /// client is told CONCURRENT_TRANSACTIONS meanwhile.
    AbortFirst(TxnMetadata),
}

impl TxnMetadata {
    /// A transactional id seen for the first time, given a new producer id.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: -1,
            producer_epoch: 0,
            next_producer_id: -1,
            v2: false,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// InitProducerId for an existing transactional id: the epoch goes up
    /// by one (fencing any older instance of the producer), or, when it is
    /// exhausted, the producer id is replaced by `new_producer_id()`.
    /// `expected` is the id and epoch the producer believes it has
    /// (KIP-360), if it sent them.
    pub fn init_producer_id(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: impl FnOnce() -> Result<i64>,
        now_ms: i64,
    ) -> Result<InitOutcome> {
        if let Some((id, epoch)) = expected {
            let known =
                id == self.producer_id || (id == self.previous_producer_id && epoch >= MAX_EPOCH);
            if !known {
                return Err(BrokerError::ProducerFenced(format!(
                    "transactional id '{}' now has producer id {}, not {id}",
                    self.transactional_id, self.producer_id
                )));
            }
            if id == self.producer_id && epoch != self.producer_epoch {
                return Err(BrokerError::ProducerFenced(format!(
                    "producer epoch {epoch} is not the current {}",
                    self.producer_epoch
                )));
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(
                BrokerError::ConcurrentTransactions(self.transactional_id.clone()),
            ),
            TxnState::Ongoing => {
                // Fence the open transaction's producer, then abort it.
                let mut next = self.clone();
                next.producer_epoch = self.producer_epoch.saturating_add(1);
                next.state = TxnState::PrepareAbort;
                next.last_update_ms = now_ms;
                Ok(InitOutcome::AbortFirst(next))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = self.clone();
                if self.producer_epoch >= MAX_EPOCH {
                    next.previous_producer_id = self.producer_id;
                    next.producer_id = new_producer_id()?;
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch += 1;
                }
                next.timeout_ms = timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now_ms;
                Ok(InitOutcome::Ready(next))
            }
        }
    }

    /// Checks that a request comes from the current producer.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<()> {
        if producer_id != self.producer_id {
            return Err(BrokerError::InvalidProducerIdMapping(format!(
                "transactional id '{}' has producer id {}, not {producer_id}",
                self.transactional_id, self.producer_id
            )));
        }
        if producer_epoch != self.producer_epoch {
            return Err(BrokerError::ProducerFenced(format!(
                "producer epoch {producer_epoch} is not the current {}",
                self.producer_epoch
            )));
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets
    /// partition; under V2, a first write to a partition): the transaction
    /// is open, with these partitions in it. `v2` says whether the producer
    /// speaks Transactions V2, recorded when the transaction opens. None
    /// when nothing changes (all already in the open transaction).
    pub fn add_partitions(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        v2: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state.is_preparing() {
            return Err(BrokerError::ConcurrentTransactions(
                self.transactional_id.clone(),
            ));
        }
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(None);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
            next.state = TxnState::Ongoing;
            next.v2 = v2;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn: the transaction's outcome is decided. `Ok(None)` for a
    /// retry of an EndTxn that already completed (answered with success
    /// and the current producer id and epoch). `v2`: the request is EndTxn
    /// v5+, whose producer expects the epoch bumped; `new_producer_id` is
    /// called when that bump exhausts the epoch.
    pub fn end(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        v2: bool,
        new_producer_id: impl FnOnce() -> Result<i64>,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>> {
        let current_producer =
            (producer_id, producer_epoch) == (self.producer_id, self.producer_epoch);
        if v2
            && !commit
            && current_producer
            && !self.state.is_preparing()
            && self.state != TxnState::Ongoing
        {
            // Under V2 a producer cannot know whether its failed writes
            // opened a transaction, so it may abort one that is not open:
            // allowed, and the epoch is bumped all the same (Kafka 4.x).
            let mut next = self.prepare(false, now_ms);
            next.v2 = true;
            next.bump_epoch(new_producer_id)?;
            return Ok(Some(next));
        }
        if self.v2 {
            self.check_v2_end(producer_id, producer_epoch)?;
        } else {
            self.check_producer(producer_id, producer_epoch)?;
        }
        let invalid = || {
            Err(BrokerError::InvalidTxnState(format!(
                "cannot {} transactional id '{}' in state {}",
                if commit { "commit" } else { "abort" },
                self.transactional_id,
                self.state.name()
            )))
        };
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                // As in Kafka, the EndTxn's version decides the bump: the
                // producer reads the new epoch from the v5 answer.
                let mut next = self.prepare(commit, now_ms);
                next.v2 = v2;
                if v2 {
                    next.bump_epoch(new_producer_id)?;
                }
                Ok(Some(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(
                BrokerError::ConcurrentTransactions(self.transactional_id.clone()),
            ),
            _ => invalid(),
        }
    }

    /// The V2 epoch bump of an EndTxn; when the epoch is exhausted, the
    /// producer id to move to once the transaction completes.
    fn bump_epoch(&mut self, new_producer_id: impl FnOnce() -> Result<i64>) -> Result<()> {
        if self.producer_epoch >= MAX_EPOCH {
            self.next_producer_id = new_producer_id()?;
        }
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        Ok(())
    }

    /// The producer check of an EndTxn for a V2 transaction, as Kafka makes
    /// it: an open transaction is ended with the current epoch; one being
    /// or already ended only by a retry, which carries the epoch below the
    /// bumped one (or, if the bump replaced the producer id, the old id at
    /// the last epoch).
    fn check_v2_end(&self, producer_id: i64, producer_epoch: i16) -> Result<()> {
        let retry_after_rotation = self.previous_producer_id == producer_id
            && producer_epoch >= MAX_EPOCH
            && self.producer_epoch == 0;
        let retry = producer_id == self.producer_id
            && producer_epoch.checked_add(1) == Some(self.producer_epoch);
        if producer_id != self.producer_id && !retry_after_rotation {
            return Err(BrokerError::InvalidProducerIdMapping(format!(
                "transactional id '{}' has producer id {}, not {producer_id}",
                self.transactional_id, self.producer_id
            )));
        }
        let valid = match self.state {
            TxnState::Ongoing | TxnState::Empty => producer_epoch == self.producer_epoch,
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry,
            TxnState::CompleteCommit | TxnState::CompleteAbort => retry || retry_after_rotation,
        };
        if !valid {
            return Err(BrokerError::ProducerFenced(format!(
                "producer epoch {producer_epoch} does not end the transaction of '{}' at epoch {}",
                self.transactional_id, self.producer_epoch
            )));
        }
        Ok(())
    }

    /// The transaction moves to PrepareCommit or PrepareAbort.
    pub fn prepare(&self, commit: bool, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        next.last_update_ms = now_ms;
        next
    }

    /// Every marker is written: the transaction is complete.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        if self.next_producer_id >= 0 {
            next.previous_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = -1;
        }
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }

    /// An open transaction past its timeout: aborted by the coordinator,
    /// with the epoch bumped so that its producer is fenced.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// The aborting of a timed-out transaction.
    pub fn fence_and_abort(&self, now_ms: i64) -> TxnMetadata {
        self.fence_and_decide(false, now_ms)
    }

    /// The broker decides an open transaction itself (a timeout, or the
    /// check-back's answer): its producer is fenced by an epoch bump, so
    /// that nothing more of it is accepted, and the outcome prepared.
    pub fn fence_and_decide(&self, commit: bool, now_ms: i64) -> TxnMetadata {
        let mut next = self.prepare(commit, now_ms);
        next.producer_epoch = self.producer_epoch.saturating_add(1);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, p: i32) -> TopicPartition {
        (topic.to_string(), p)
    }

    fn no_new_id() -> Result<i64> {
        panic!("no new producer id expected")
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let meta = TxnMetadata::new("orders", 7, 60_000, 0);
        let open = meta
            .add_partitions(7, 0, &[tp("t", 0), tp("t", 1)], false, 10)
            .unwrap()
            .unwrap();
        assert_eq!(open.state, TxnState::Ongoing);
        assert_eq!(open.start_ms, 10);
        // Adding what is already in it changes nothing.
        assert_eq!(
            open.add_partitions(7, 0, &[tp("t", 0)], false, 11).unwrap(),
            None
        );
        let prepared = open.end(7, 0, true, false, no_new_id, 20).unwrap().unwrap();
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert!(matches!(
            prepared.end(7, 0, true, false, no_new_id, 21),
            Err(BrokerError::ConcurrentTransactions(_))
        ));
        let done = prepared.complete(30);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        // A retried EndTxn is answered with success; the other outcome is refused.
        assert_eq!(done.end(7, 0, true, false, no_new_id, 31).unwrap(), None);
        assert!(matches!(
            done.end(7, 0, false, false, no_new_id, 31),
            Err(BrokerError::InvalidTxnState(_))
        ));
        // The next transaction starts afresh.
        let next = done
            .add_partitions(7, 0, &[tp("u", 3)], false, 40)
            .unwrap()
            .unwrap();
        assert_eq!(next.partitions.len(), 1);
        assert_eq!(next.start_ms, 40);
    }

    #[test]
    fn init_producer_id_bumps_the_epoch_and_fences_the_old_producer() {
        let meta = TxnMetadata::new("orders", 7, 60_000, 0);
        let InitOutcome::Ready(next) = meta.init_producer_id(30_000, None, no_new_id, 5).unwrap()
        else {
            panic!("ready expected")
        };
        assert_eq!((next.producer_id, next.producer_epoch), (7, 1));
        assert_eq!(next.timeout_ms, 30_000);
        // The old epoch is fenced everywhere.
        assert!(matches!(
            next.add_partitions(7, 0, &[tp("t", 0)], false, 6),
            Err(BrokerError::ProducerFenced(_))
        ));
        assert!(matches!(
            next.add_partitions(8, 1, &[tp("t", 0)], false, 6),
            Err(BrokerError::InvalidProducerIdMapping(_))
        ));
        // With a transaction open, it is aborted first (epoch bumped).
        let open = next
            .add_partitions(7, 1, &[tp("t", 0)], false, 7)
            .unwrap()
            .unwrap();
        let InitOutcome::AbortFirst(aborting) =
            open.init_producer_id(30_000, None, no_new_id, 8).unwrap()
        else {
            panic!("abort expected")
        };
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(aborting.producer_epoch, 2);
        // A KIP-360 request naming another producer id is fenced.
        assert!(matches!(
            next.init_producer_id(30_000, Some((99, 0)), no_new_id, 9),
            Err(BrokerError::ProducerFenced(_))
        ));
    }

    #[test]
    fn an_exhausted_epoch_gets_a_new_producer_id() {
        let mut meta = TxnMetadata::new("orders", 7, 60_000, 0);
        meta.producer_epoch = MAX_EPOCH;
        let InitOutcome::Ready(next) = meta.init_producer_id(1000, None, || Ok(8), 1).unwrap()
        else {
            panic!("ready expected")
        };
        assert_eq!((next.producer_id, next.producer_epoch), (8, 0));
        assert_eq!(next.previous_producer_id, 7);
    }

    #[test]
    fn open_transactions_time_out_and_are_aborted_with_a_fence() {
        let meta = TxnMetadata::new("orders", 7, 1000, 0);
        let open = meta
            .add_partitions(7, 0, &[tp("t", 0)], false, 100)
            .unwrap()
            .unwrap();
        assert!(!open.timed_out(1100));
        assert!(open.timed_out(1101));
        let aborting = open.fence_and_abort(1101);
        assert_eq!(aborting.state, TxnState::PrepareAbort);
        assert_eq!(aborting.producer_epoch, 1);
    }

    #[test]
    fn v2_end_bumps_the_epoch_and_knows_its_retries() {
        let meta = TxnMetadata::new("orders", 7, 60_000, 0);
        // The first write opens the transaction: no AddPartitionsToTxn.
        let open = meta
            .add_partitions(7, 0, &[tp("t", 0)], true, 10)
            .unwrap()
            .unwrap();
        assert!(open.v2);
        let prepared = open.end(7, 0, true, true, no_new_id, 20).unwrap().unwrap();
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareCommit, 1)
        );
        // A retry while the markers are written: try again later.
        assert!(matches!(
            prepared.end(7, 0, true, true, no_new_id, 21),
            Err(BrokerError::ConcurrentTransactions(_))
        ));
        let done = prepared.complete(30);
        // A retry of the finished EndTxn (epoch below the bumped one) succeeds;
        // the other outcome is refused; the current epoch is not a retry.
        assert_eq!(done.end(7, 0, true, true, no_new_id, 31).unwrap(), None);
        assert!(matches!(
            done.end(7, 0, false, true, no_new_id, 31),
            Err(BrokerError::InvalidTxnState(_))
        ));
        assert!(matches!(
            done.end(7, 1, true, true, no_new_id, 31),
            Err(BrokerError::ProducerFenced(_))
        ));
        // Aborting a transaction that is not open is allowed, and bumps.
        let aborted = done.end(7, 1, false, true, no_new_id, 32).unwrap().unwrap();
        assert_eq!(
            (aborted.state, aborted.producer_epoch),
            (TxnState::PrepareAbort, 2)
        );
        assert!(aborted.partitions.is_empty());
        // The old epoch can no longer open a transaction; the new one can.
        assert!(matches!(
            done.end(7, 2, true, true, no_new_id, 33),
            Err(BrokerError::ProducerFenced(_))
        ));
        assert!(matches!(
            done.add_partitions(7, 0, &[tp("t", 0)], true, 40),
            Err(BrokerError::ProducerFenced(_))
        ));
        let next = done
            .add_partitions(7, 1, &[tp("t", 1)], true, 40)
            .unwrap()
            .unwrap();
        assert_eq!(next.partitions.len(), 1);
    }

    #[test]
    fn v2_end_at_the_last_epoch_moves_to_a_new_producer_id() {
        let mut meta = TxnMetadata::new("orders", 7, 60_000, 0);
        meta.producer_epoch = MAX_EPOCH;
        let open = meta
            .add_partitions(7, MAX_EPOCH, &[tp("t", 0)], true, 10)
            .unwrap()
            .unwrap();
        let prepared = open
            .end(7, MAX_EPOCH, false, true, || Ok(8), 20)
            .unwrap()
            .unwrap();
        // The markers still carry the old id, at the bumped epoch.
        assert_eq!(
            (prepared.producer_id, prepared.producer_epoch),
            (7, MAX_EPOCH + 1)
        );
        let done = prepared.complete(30);
        assert_eq!((done.producer_id, done.producer_epoch), (8, 0));
        assert_eq!(done.previous_producer_id, 7);
        // The old id's retry is recognised.
        assert_eq!(
            done.end(7, MAX_EPOCH, false, true, no_new_id, 31).unwrap(),
            None
        );
    }

    #[test]
    fn an_end_txn_before_v5_does_not_bump_the_epoch() {
        let meta = TxnMetadata::new("orders", 7, 60_000, 0);
        let open = meta
            .add_partitions(7, 0, &[tp("t", 0)], true, 10)
            .unwrap()
            .unwrap();
        let done = open
            .end(7, 0, false, false, no_new_id, 20)
            .unwrap()
            .unwrap()
            .complete(21);
        assert_eq!(done.producer_epoch, 0);
        assert_eq!(done.end(7, 0, false, false, no_new_id, 22).unwrap(), None);
    }
}
