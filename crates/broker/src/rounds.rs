//! The driver shared by both kinds of group commit (`journal_rounds.rs`,
//! `sync_rounds.rs`): one thread runs rounds back to back while anyone
//! waits, and waiters wake after each round to check whether it covered
//! them.
//!
//! The rounds run on a thread of their own rather than as a task that
//! hands each round to the blocking pool: a round then follows the
//! previous one without waking another thread first, and only the end of
//! a round crosses back to the async side. No waiter's cancellation (a
//! client gone) can stop a round others wait for.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::error;

use crate::error::{BrokerError, Result};

/// One kind of round. Called on the rounds' thread, where blocking is
/// allowed.
pub trait Round: Send + Sync + 'static {
    /// Runs one round if anything waits for one; `false` when nothing did
    /// (the thread then sleeps until the next waiter).
    fn run_round(&self) -> bool;

    /// A round panicked and no more will run: refuse what needs them.
    fn abandon(&self, _why: &str) {}
}

/// Runs rounds of `R` on a thread started at the first wait.
pub struct Rounds<R: Round> {
    shared: Arc<Shared<R>>,
}

struct Shared<R> {
    round: R,
    /// Thread name, for logs and debuggers.
    name: &'static str,
    control: Mutex<Control>,
    wake: Condvar,
    /// Counts rounds; waiters wake on each change.
    completed: watch::Sender<u64>,
}

#[derive(Default)]
struct Control {
    started: bool,
    /// A waiter arrived since the thread last looked.
    wanted: bool,
    /// The owner is gone: the thread ends.
    stopped: bool,
    /// Why rounds stopped for good (a round panicked).
    failed: Option<String>,
}

impl<R: Round> Rounds<R> {
    pub fn new(name: &'static str, round: R) -> Rounds<R> {
        Rounds {
            shared: Arc::new(Shared {
                round,
                name,
                control: Mutex::new(Control::default()),
                wake: Condvar::new(),
                completed: watch::Sender::new(0),
            }),
        }
    }

    pub fn round(&self) -> &R {
        &self.shared.round
    }

    /// Waits for rounds until `covered` says they covered the caller
    /// (`Ok(true)`) or fails.
    pub async fn wait_until(&self, mut covered: impl FnMut() -> Result<bool>) -> Result<()> {
        // Subscribed before the first check, so a round that ends between
        // the check and the wait is not missed.
        let mut completed = self.shared.completed.subscribe();
        loop {
            if covered()? {
                return Ok(());
            }
            self.want_round()?;
            completed
                .changed()
                .await
                .map_err(|_| BrokerError::Storage(format!("{} stopped", self.shared.name)))?;
        }
    }

    /// Asks for a round, starting the thread if need be; does not wait
    /// for it.
    pub fn want_round(&self) -> Result<()> {
        let mut control = self.shared.control();
        if let Some(why) = &control.failed {
            return Err(BrokerError::Storage(why.clone()));
        }
        control.wanted = true;
        if !control.started {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name(self.shared.name.to_string())
                .spawn(move || shared.run())
                .map_err(|e| {
                    BrokerError::Storage(format!("cannot start {}: {e}", self.shared.name))
                })?;
            control.started = true;
        }
        drop(control);
        self.shared.wake.notify_one();
        Ok(())
    }
}

impl<R: Round> Drop for Rounds<R> {
    fn drop(&mut self) {
        self.shared.control().stopped = true;
        self.shared.wake.notify_one();
    }
}

impl<R: Round> Shared<R> {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        loop {
            {
                let mut control = self.control();
                while !control.wanted && !control.stopped {
                    control = self.wake.wait(control).unwrap_or_else(|p| p.into_inner());
                }
                if control.stopped {
                    return;
                }
                control.wanted = false;
            }
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while self.round.run_round() {
                    self.completed.send_modify(|n| *n += 1);
                }
            }));
            if ran.is_err() {
                let why = format!("a round of {} panicked; no more rounds run", self.name);
                error!("{why}");
                self.round.abandon(&why);
                // Waiters wake below, and fail instead of waiting for a
                // round that never comes.
                self.control().failed = Some(why);
            }
            // Also wakes anyone who checked before the last round ended.
            self.completed.send_modify(|n| *n += 1);
            if ran.is_err() {
                return;
            }
        }
    }
}
