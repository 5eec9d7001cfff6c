//! The group-commit writer thread.

use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, WriteTransaction};

use super::recent::RecentIndex;
use crate::storage::StorageError;

/// What a job hands back after running: called once the transaction's fate is known.
pub(super) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs inside the shared transaction and returns its completion.
pub(super) type Job = Box<dyn FnOnce(&WriteTransaction) -> Completion + Send>;

/// The sending side of the writer thread's queue.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Most jobs committed together; bounds the latency of the first job in a burst.
const MAX_GROUP: usize = 512;

impl Writer {
    /// Starts the writer thread for `db`, which also folds `recent` when it is due. It stops
    /// when every `Writer` is dropped.
    pub(super) fn start(db: Arc<Database>, recent: Arc<RecentIndex>) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("arroba-disk-writer".into())
            .spawn(move || run(db, recent, rx))
            .expect("spawning the storage writer thread");
        Writer { jobs: tx }
    }

    /// Runs `f` in a write transaction and returns its result once the transaction has been
    /// committed (durably). `f` must check everything before it writes anything: its error
    /// must leave the transaction as it found it.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            Box::new(move |committed: Result<(), String>| {
                let outcome = match (result, committed) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => {
                        Err(StorageError::Backend(format!("commit failed: {e}").into()))
                    }
                    (Ok(v), Ok(())) => Ok(v),
                };
                let _ = tx.send(outcome);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Backend("the storage writer has stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Backend("the storage writer dropped a job".into()))?
    }
}

fn run(db: Arc<Database>, recent: Arc<RecentIndex>, rx: mpsc::Receiver<Job>) {
    // A job taken from the queue while folding, run first in the next group.
    let mut waiting: Option<Job> = None;
    loop {
        let first = match waiting.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let message = e.to_string();
                for job in jobs {
                    // Without a transaction the job cannot run; report the failure to it
                    // through a throwaway completion by dropping the job (its sender closes).
                    drop(job);
                }
                tracing::error!(error = %message, "storage writer could not begin a transaction");
                continue;
            }
        };
        let completions: Vec<Completion> = jobs.into_iter().map(|job| job(&txn)).collect();
        let committed = txn.commit().map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, "storage commit failed");
            // The jobs published index entries for blocks that were not stored.
            if let Err(e) = recent.reload(&db) {
                tracing::error!(error = %e, "storage could not reload its recent block index");
            }
        }
        for complete in completions {
            complete(committed.clone());
        }
        // After the answers, one due slice of the block index at least, more while no write
        // waits: a fold delays only the next group.
        while let Some(slice) = recent.due_slice() {
            if let Err(e) = recent.fold_slice(&db, slice) {
                tracing::error!(error = %e, "storage could not fold its recent block index");
                break;
            }
            if let Ok(job) = rx.try_recv() {
                waiting = Some(job);
                break;
            }
        }
    }
}
