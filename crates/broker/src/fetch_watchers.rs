//! Fetches waiting for a partition's data (Kafka's fetch purgatory, keyed
//! by partition): a fetch that found too little registers its waker with
//! each partition it reads, and a partition whose high watermark moves
//! wakes only those. A broker-wide wake-up instead cost every waiting fetch
//! a pass over its partitions for every produce request anywhere; with 200
//! idle consumers of other topics beside a 50 MB/s keyed producer that was
//! 0.2 to 0.3 of a core.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// One partition's waiting fetches.
#[derive(Default)]
pub struct FetchWatchers {
    /// Weak: a fetch that answered (or timed out) drops its waker, and its
    /// registration dies with it, to be swept at the next `watch`.
    waiting: Mutex<Vec<Weak<Notify>>>,
}

impl FetchWatchers {
    /// Registers `waiter` to be notified at the next `wake`. A notification
    /// that comes before the waiter waits is kept (`Notify::notify_one`),
    /// so a fetch registers, reads, and then waits without missing data
    /// published in between.
    pub fn watch(&self, waiter: &Arc<Notify>) {
        let mut waiting = self.lock();
        waiting.retain(|w| w.strong_count() > 0);
        let already = waiting
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(waiter)));
        if !already {
            waiting.push(Arc::downgrade(waiter));
        }
    }

    /// Notifies every registered fetch once and forgets them: each
    /// registers again if it goes back to waiting.
    pub fn wake(&self) {
        let woken = std::mem::take(&mut *self.lock());
        for waiter in woken.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Notify>>> {
        // A list of weak pointers is consistent after any panic.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn registered(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn notified(waiter: &Notify) -> bool {
        waiter.notified().now_or_never().is_some()
    }

    #[test]
    fn a_wake_reaches_the_fetches_watching_that_partition_only() {
        let (orders, payments) = (FetchWatchers::default(), FetchWatchers::default());
        let (on_orders, on_both) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        orders.watch(&on_orders);
        orders.watch(&on_both);
        payments.watch(&on_both);
        payments.wake();
        assert!(!notified(&on_orders));
        assert!(
            notified(&on_both),
            "woken before it waits, it still sees it"
        );
        orders.wake();
        assert!(notified(&on_orders));
        assert_eq!(orders.registered(), 0, "a wake forgets whom it woke");
    }

    #[test]
    fn registrations_do_not_pile_up() {
        let partition = FetchWatchers::default();
        let waiter = Arc::new(Notify::new());
        for _ in 0..10 {
            partition.watch(&waiter);
        }
        assert_eq!(partition.registered(), 1, "one fetch, one registration");
        for _ in 0..10 {
            partition.watch(&Arc::new(Notify::new()));
        }
        assert_eq!(partition.registered(), 2, "fetches that ended are swept");
        drop(waiter);
        partition.wake();
        assert_eq!(partition.registered(), 0);
    }
}
