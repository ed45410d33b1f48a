//! Group commit: work items that arrive while a group is being written wait in a queue and
//! are written together by the next group (`services::refresh_batch` writes refresh-token
//! rotations this way). A group runs in a task of its own, spawned when work arrives and
//! ended when the queue is empty, so a submitter that goes away cannot abort the others'
//! write, and the queue holds no task (nor what it captured) while idle. Up to `writers` such
//! tasks run at once: one for a single-writer database (SQLite), a few where the database
//! takes concurrent writers and a group's time is mostly round trips (PostgreSQL).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The items waiting for the next group, and how many group tasks run (at most `writers`).
struct Queue<T, R> {
    waiting: Vec<(T, oneshot::Sender<R>)>,
    running: usize,
    writers: usize,
}

/// A queue of items of type `T`, each answered with an `R` once its group was written.
pub struct GroupQueue<T, R>(Arc<Mutex<Queue<T, R>>>);

/// Group tasks at once on a database that takes concurrent writers (PostgreSQL): 8 measured
/// no better than 4 for refresh rotations on 2 cores.
const CONCURRENT_WRITERS: usize = 4;

impl<T, R> GroupQueue<T, R> {
    /// A queue whose groups are written by at most `writers` tasks at once (at least one).
    pub fn new(writers: usize) -> Self {
        Self(Arc::new(Mutex::new(Queue { waiting: Vec::new(), running: 0, writers: writers.max(1) })))
    }

    /// A queue for writes to `db`: one writer on SQLite (it has one; its groups commit one
    /// after another, as [`super::WriteGate`] orders them), [`CONCURRENT_WRITERS`] elsewhere,
    /// where a group's time is mostly round trips and the writes' own conditions keep
    /// concurrent groups apart.
    pub fn for_database(db: &sea_orm::DatabaseConnection) -> Self {
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        Self::new(if sqlite { 1 } else { CONCURRENT_WRITERS })
    }
}

impl<T, R> Clone for GroupQueue<T, R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T, R> Default for GroupQueue<T, R> {
    /// One writer.
    fn default() -> Self {
        Self::new(1)
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupQueue<T, R> {
    /// Queues `item` and waits for its answer. When fewer than `writers` group tasks run, one
    /// is started with `write`, which is given groups of at most `max` items, in arrival
    /// order, and answers each item of a group in order. `None` if the task ended without answering (it panicked).
    pub async fn submit<W, F>(&self, item: T, max: usize, write: W) -> Option<R>
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Vec<R>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.0.lock().expect("group queue");
            q.waiting.push((item, tx));
            let start = q.running < q.writers;
            q.running += usize::from(start);
            start
        };
        if start {
            tokio::spawn(self.clone().drain(max.max(1), write));
        }
        rx.await.ok()
    }

    /// Writes groups until the queue is empty.
    async fn drain<W, F>(self, max: usize, write: W)
    where
        W: Fn(Vec<T>) -> F,
        F: Future<Output = Vec<R>>,
    {
        loop {
            let group = {
                let mut q = self.0.lock().expect("group queue");
                if q.waiting.is_empty() {
                    q.running -= 1;
                    return;
                }
                let n = q.waiting.len().min(max);
                q.waiting.drain(..n).collect::<Vec<_>>()
            };
            let (items, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            for (reply, answer) in replies.into_iter().zip(write(items).await) {
                let _ = reply.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GroupQueue;

    /// Items submitted at once are written in groups of at most `max`, each answered with its
    /// own answer, and the queue goes idle afterwards.
    #[tokio::test]
    async fn items_are_grouped_and_answered_in_order() {
        let q: GroupQueue<u32, (u32, usize)> = GroupQueue::default();
        let calls: Vec<_> = (0..10)
            .map(|i| {
                q.submit(i, 4, |group: Vec<u32>| async move {
                    tokio::task::yield_now().await;
                    let n = group.len();
                    group.into_iter().map(|i| (i * 2, n)).collect()
                })
            })
            .collect();
        let answers = futures::future::join_all(calls).await;
        for (i, a) in answers.iter().enumerate() {
            let (double, size) = a.expect("an answer");
            assert_eq!(double, i as u32 * 2);
            assert!((1..=4).contains(&size));
        }
        assert!(answers.iter().any(|a| a.unwrap().1 > 1), "some items shared a group");
        tokio::task::yield_now().await;
        assert!(q.0.lock().unwrap().running == 0 || q.0.lock().unwrap().waiting.is_empty());
    }

    /// With two writers, two groups are written at once, and neither holds more than `max`.
    #[tokio::test]
    async fn two_writers_write_two_groups_at_once() {
        let q: GroupQueue<u32, usize> = GroupQueue::new(2);
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let (in_flight, most) = (in_flight.clone(), most.clone());
                q.submit(i, 3, move |group: Vec<u32>| {
                    let (in_flight, most) = (in_flight.clone(), most.clone());
                    async move {
                        use std::sync::atomic::Ordering::SeqCst;
                        most.fetch_max(in_flight.fetch_add(1, SeqCst) + 1, SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        in_flight.fetch_sub(1, SeqCst);
                        vec![group.len(); group.len()]
                    }
                })
            })
            .collect();
        let answers = futures::future::join_all(calls).await;
        assert!(answers.iter().all(|a| matches!(a, Some(1..=3))));
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2, "two groups were written at once");
        assert_eq!(q.0.lock().unwrap().running, 0, "both writers ended with the queue empty");
    }
}
