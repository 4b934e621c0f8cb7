//! The loader's handle: push transactions (back-pressured by a byte budget), watch how far they
//! are applied, switch safe mode, read the status, close.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::LoaderConfig;
use crate::dispatcher::{Dispatcher, DispatcherParts, Queued, Routing};
use crate::error::LoaderError;
use crate::session::{Link, Role, Sessions};
use crate::status::{AppliedPosition, LoaderStatus, Shared};
use crate::txn::Txn;
use crate::worker::Worker;

/// A running loader. All methods take `&self`, so it can be shared (e.g. in an `Arc`) between
/// the task that pushes and the ones that read its status.
pub struct Loader {
    input: Mutex<Option<mpsc::UnboundedSender<Queued>>>,
    budget: Arc<Semaphore>,
    budget_limit: usize,
    shared: Arc<Shared>,
    applied: watch::Receiver<AppliedPosition>,
    dispatcher: tokio::sync::Mutex<Option<JoinHandle<Result<(), LoaderError>>>>,
    /// Stops the dispatcher (and with it the workers) without waiting for anything.
    abort: tokio::task::AbortHandle,
    /// Where the dispatcher and the workers run (see [`Loader::connect`]).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids; its tasks end either way.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Loader {
    /// Checks the configuration, connects once to prove the downstream is reachable (failing
    /// with [`LoaderError::Connect`] otherwise), and starts the dispatcher and the workers. After
    /// this, an unreachable downstream is retried without end.
    ///
    /// The dispatcher and the workers run on a runtime of their own, on one thread: the caller's
    /// threads decode what is pushed, this one writes it out, and rows stay on one core from
    /// their routing to their statement instead of moving between runtime threads with every
    /// hand-off between tasks.
    pub async fn connect(config: LoaderConfig) -> Result<Loader, LoaderError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loader")
            .enable_all()
            .build()
            .map_err(|err| {
                LoaderError::Crashed(format!("cannot start the loader's runtime: {err}"))
            })?;
        let started = runtime.spawn(Loader::start(config)).await;
        let mut loader = match started {
            Ok(started) => started?,
            Err(join) => return Err(LoaderError::Crashed(join.to_string())),
        };
        loader.runtime = Some(runtime);
        Ok(loader)
    }

    /// Connects and starts the dispatcher and the workers on the current runtime.
    async fn start(config: LoaderConfig) -> Result<Loader, LoaderError> {
        let sessions = Arc::new(Sessions::new(&config));
        let mut control = Link::new(sessions.clone(), Role::Control);
        control
            .conn()
            .await
            .map_err(|failure| LoaderError::Connect {
                addr: config.addr(),
                message: failure.message(),
            })?;

        let shared = Arc::new(Shared::default());
        shared.safe_mode.store(config.safe_mode, Ordering::Relaxed);
        let (routing, worker_count) = if config.enable_dispatch {
            let routing = Routing::Parallel {
                detect: config.enable_detect,
                chunk: config.batch_size,
            };
            (routing, config.worker_count)
        } else {
            (Routing::Serial, 1)
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut worker_tasks = JoinSet::new();
        let mut workers = Vec::with_capacity(worker_count);
        for id in 0..worker_count {
            let (units_tx, units) = mpsc::unbounded_channel();
            workers.push(units_tx);
            let worker = Worker {
                id,
                link: Link::new(sessions.clone(), Role::Worker),
                shared: shared.clone(),
                batch_size: routing.chunk(),
                open_parts: Vec::new(),
            };
            worker_tasks.spawn(worker.run(units, events_tx.clone()));
        }
        drop(events_tx);

        let (input_tx, input) = mpsc::unbounded_channel();
        let (applied_tx, applied) = watch::channel(AppliedPosition::default());
        let budget_limit = config
            .max_buffered_bytes
            .min(u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(budget_limit));
        let dispatcher = Dispatcher::new(DispatcherParts {
            routing,
            shared: shared.clone(),
            input,
            workers,
            worker_tasks,
            events,
            control,
            applied: applied_tx,
        });
        let task_shared = shared.clone();
        let task_budget = budget.clone();
        let handle = tokio::spawn(async move {
            let result = dispatcher.run().await;
            if let Err(err) = &result {
                tracing::error!(error = %err, "loader stopped");
                task_shared.set_failed(err.clone());
            }
            // Wakes pushes waiting for budget that will never be released.
            task_budget.close();
            result
        });
        Ok(Loader {
            input: Mutex::new(Some(input_tx)),
            abort: handle.abort_handle(),
            budget,
            budget_limit,
            shared,
            applied,
            dispatcher: tokio::sync::Mutex::new(Some(handle)),
            runtime: None,
        })
    }

    /// Queues a transaction behind those pushed before. Waits while the queued transactions
    /// hold `max_buffered_bytes` (a larger transaction waits for the whole budget and then goes
    /// alone). Fails with the loader's error once it has stopped.
    pub async fn push(&self, txn: Txn) -> Result<(), LoaderError> {
        self.enqueue(txn, false).await
    }

    /// Queues the first or a middle part of a transaction too big to hold whole; its next part
    /// follows in the next push, and its last goes through [`Loader::push`]. With dispatch, a
    /// part is applied like any pushed transaction (transactions are split anyway). Without,
    /// the parts run in one downstream transaction, committed with the last part, and each
    /// part's budget is released once it ran, so memory stays bounded. Parts that ran are gone:
    /// a failure part way stops the loader with [`LoaderError::PartialTxn`], nothing of the
    /// transaction committed, and the caller must replay it from its first part.
    pub async fn push_unfinished(&self, txn: Txn) -> Result<(), LoaderError> {
        self.enqueue(txn, true).await
    }

    async fn enqueue(&self, txn: Txn, continues: bool) -> Result<(), LoaderError> {
        let bytes = txn.approx_bytes();
        // Both bounds are at most u32::MAX (see `connect`).
        let permits = bytes.clamp(1, self.budget_limit) as u32;
        let permit = match self.budget.clone().acquire_many_owned(permits).await {
            Ok(permit) => permit,
            Err(_) => return Err(self.stopped_error()),
        };
        let input = self
            .input
            .lock()
            .ok()
            .and_then(|input| input.clone())
            .ok_or_else(|| self.stopped_error())?;
        self.shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        input
            .send(Queued {
                txn,
                continues,
                bytes,
                permit,
            })
            .map_err(|_| self.stopped_error())
    }

    /// How far pushed transactions are applied. Positions only grow; the sender is dropped
    /// when the loader stops (then [`Loader::close`] tells why).
    pub fn applied(&self) -> watch::Receiver<AppliedPosition> {
        self.applied.clone()
    }

    /// Switches safe mode; chunks started from now on use the new mode.
    pub fn set_safe_mode(&self, on: bool) {
        if self.shared.safe_mode.swap(on, Ordering::Relaxed) != on {
            tracing::info!(safe_mode = on, "loader safe mode switched");
        }
    }

    pub fn safe_mode(&self) -> bool {
        self.shared.safe_mode()
    }

    pub fn status(&self) -> LoaderStatus {
        self.shared.status(*self.applied.borrow())
    }

    /// Stops taking transactions, waits until those pushed are applied, and returns the error
    /// that stopped the loader, if any. Later calls return the same error.
    pub async fn close(&self) -> Result<(), LoaderError> {
        if let Ok(mut input) = self.input.lock() {
            input.take();
        }
        if let Some(handle) = self.dispatcher.lock().await.take() {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => self.shared.set_failed(err),
                Err(join) => self
                    .shared
                    .set_failed(LoaderError::Crashed(join.to_string())),
            }
        }
        match self.shared.failed() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Stops at once, abandoning whatever is pushed but not applied: the workers' connections
    /// close, so the downstream rolls back their open transactions. For a stop that cannot wait
    /// for the downstream; what was applied stays reported by [`Loader::applied`].
    pub fn abort(&self) {
        if let Ok(mut input) = self.input.lock() {
            input.take();
        }
        self.abort.abort();
        self.budget.close();
        self.shared.set_failed(LoaderError::Stopped);
    }

    fn stopped_error(&self) -> LoaderError {
        self.shared.failed().unwrap_or(LoaderError::Stopped)
    }
}
