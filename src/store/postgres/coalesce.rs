//! The plumbing shared by the PostgreSQL store's two coalescing tasks: refreshes
//! (`rotation.rs`) and session checks (`lookup.rs`). Callers hand a request to one task
//! and wait for its answer; the task takes every request waiting, runs one statement for all of
//! them, and answers each caller with its own session's row.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::super::api::SessionWithUser;
use super::super::error::{StoreError, StoreResult};
use super::super::row::SessionUserRow;

/// What a caller gets back: its session as the statement left it, or none.
pub(super) type Answer = StoreResult<Option<SessionWithUser>>;
pub(super) type Reply = oneshot::Sender<Answer>;
pub(super) type Requests<R> = mpsc::UnboundedReceiver<(R, Reply)>;

/// The callers' side of a coalescing task.
pub(super) struct Coalescer<R> {
    requests: mpsc::UnboundedSender<(R, Reply)>,
    /// The task's name, for the errors said when it is gone.
    name: &'static str,
}

impl<R> Coalescer<R> {
    /// Starts `task` on the requests; it ends when the coalescer is dropped.
    pub fn start<F>(name: &'static str, task: impl FnOnce(Requests<R>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (requests, receive) = mpsc::unbounded_channel();
        tokio::spawn(task(receive));
        Self { requests, name }
    }

    /// Queues `request` and waits for its answer.
    pub async fn submit(&self, request: R) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((request, reply))
            .map_err(|_| StoreError::TaskStopped(self.name))?;
        answer
            .await
            .map_err(|_| StoreError::TaskStopped(self.name))?
    }
}

/// Waits for a request if none is `waiting`, then moves every request already queued into
/// `waiting`, up to `max` in all. Requests whose caller gave up (a timed-out request) are
/// dropped: they need no statement. Answers false once every caller's side is gone.
pub(super) async fn gather<R>(
    receive: &mut Requests<R>,
    waiting: &mut Vec<(R, Reply)>,
    max: usize,
) -> bool {
    if waiting.is_empty() {
        match receive.recv().await {
            Some(request) => waiting.push(request),
            None => return false,
        }
    }
    while waiting.len() < max {
        match receive.try_recv() {
            Ok(request) => waiting.push(request),
            Err(_) => break,
        }
    }
    waiting.retain(|(_, reply)| !reply.is_closed());
    true
}

/// A statement's rows, by session id.
pub(super) fn by_session(
    rows: impl IntoIterator<Item = SessionUserRow>,
) -> StoreResult<HashMap<Uuid, SessionWithUser>> {
    rows.into_iter()
        .map(|row| {
            let view = SessionWithUser::try_from(row)?;
            Ok((view.session.id, view))
        })
        .collect()
}

/// Answers every caller of a batch: each with its own session's row (none when the statement
/// returned none for it), or all with the batch's error.
pub(super) fn answer(
    callers: impl IntoIterator<Item = (Uuid, Reply)>,
    result: StoreResult<HashMap<Uuid, SessionWithUser>>,
) {
    match result {
        Ok(found) => {
            for (id, reply) in callers {
                let _ = reply.send(Ok(found.get(&id).cloned()));
            }
        }
        Err(err) => {
            for (_, reply) in callers {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
