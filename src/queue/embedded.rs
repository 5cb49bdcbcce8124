//! `JobQueue` in an embedded ACID store (redb), for `gallery serve` without RabbitMQ. Jobs,
//! dead jobs and the events kept for durable listeners are rows of one table keyed by
//! (queue, sequence number), each with the time it becomes ready. A delivered row stays in
//! the table, leased in memory, until it is settled: if the process dies, the lease dies with
//! it and the row is delivered again after restart. Live events go through a broadcast
//! channel and are not kept.
//!
//! Each lane is a queue of its own (`jobs`, `jobs.bulk`); a retry stays in its lane, and the
//! dead jobs of both go to `jobs.dead`. A worker leases a row only when it has a free slot,
//! and then the oldest ready upload row, else the oldest ready bulk row: it never holds bulk
//! jobs while an upload waits.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::{broadcast, Notify, OwnedSemaphorePermit, Semaphore};

use super::Depths;
use super::{
    Delivery, EventDelivery, EventStream, JobQueue, JobStream, Listener, Settle, SettleEvent,
};
use crate::blocking::blocking;
use crate::domain::{Event, EventKind, Job, Lane};

/// (queue, sequence number) → ready-at (ms since the epoch, 8 bytes big-endian) ++ body.
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// The last sequence number handed out.
const SEQUENCE: TableDefinition<&str, u64> = TableDefinition::new("sequence");
/// Durable listeners seen so far: finished photos' events are kept for each of them.
const LISTENERS: TableDefinition<&str, u64> = TableDefinition::new("listeners");

/// The upload lane; its dead letters and the bulk lane are named after it.
const JOBS: &str = "jobs";
const BULK: &str = "jobs.bulk";

/// The queue a lane's jobs wait in.
fn lane_queue(lane: Lane) -> &'static str {
    match lane {
        Lane::Upload => JOBS,
        Lane::Bulk => BULK,
    }
}

fn listener_queue(name: &str) -> String {
    format!("events.{name}")
}

fn dead(queue: &str) -> String {
    format!("{queue}.dead")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub struct EmbeddedQueue {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    /// Rows delivered and not yet settled: (queue, sequence number).
    leased: Mutex<HashSet<(String, u64)>>,
    /// Woken whenever a row may have become available.
    wake: Notify,
    live: broadcast::Sender<Event>,
    listeners: Mutex<Vec<String>>,
}

/// What becomes of a settled row.
enum Then {
    Remove,
    MoveTo(String),
    Replace { body: Vec<u8>, delay: Duration },
}

enum Claim {
    Got {
        held: Held,
        body: Vec<u8>,
    },
    /// Nothing ready; the earliest row not yet ready is due after this long.
    Wait(Option<Duration>),
}

impl Shared {
    fn push(
        txn: &WriteTransaction,
        queue: &str,
        body: &[u8],
        delay: Duration,
    ) -> anyhow::Result<()> {
        let seq = {
            let mut sequence = txn.open_table(SEQUENCE)?;
            let next = sequence.get("seq")?.map_or(0, |last| last.value()) + 1;
            sequence.insert("seq", next)?;
            next
        };
        let ready_at = now_ms() + delay.as_millis() as u64;
        let mut row = ready_at.to_be_bytes().to_vec();
        row.extend_from_slice(body);
        txn.open_table(MESSAGES)?
            .insert((queue, seq), row.as_slice())?;
        Ok(())
    }

    fn enqueue(&self, queues: &[&str], body: &[u8]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        for queue in queues {
            Self::push(&txn, queue, body, Duration::ZERO)?;
        }
        txn.commit()?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Leases the oldest ready row that nobody holds of the first of `queues` that has one.
    fn claim(self: &Arc<Self>, queues: &[String]) -> anyhow::Result<Claim> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let now = now_ms();
        let mut leased = self
            .leased
            .lock()
            .map_err(|_| anyhow!("lease table poisoned"))?;
        let mut earliest: Option<u64> = None;
        for queue in queues {
            let queue = queue.as_str();
            for row in table.range((queue, 0)..=(queue, u64::MAX))? {
                let (key, value) = row?;
                let seq = key.value().1;
                if leased.contains(&(queue.to_owned(), seq)) {
                    continue;
                }
                let (ready_at, body) = split_row(value.value());
                if ready_at <= now {
                    leased.insert((queue.to_owned(), seq));
                    return Ok(Claim::Got {
                        held: Held {
                            shared: self.clone(),
                            queue: queue.to_owned(),
                            seq,
                        },
                        body: body.to_vec(),
                    });
                }
                earliest = Some(earliest.map_or(ready_at, |e| e.min(ready_at)));
            }
        }
        Ok(Claim::Wait(
            earliest.map(|at| Duration::from_millis(at.saturating_sub(now))),
        ))
    }

    /// What waits in the job queues: rows nobody holds, ready or not yet (a retry's delay).
    fn depths(&self) -> anyhow::Result<Depths> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let now = now_ms();
        let leased = self
            .leased
            .lock()
            .map_err(|_| anyhow!("lease table poisoned"))?
            .clone();
        let mut depths = Depths::default();
        for lane in Lane::ALL {
            let queue = lane_queue(lane);
            for row in table.range((queue, 0)..=(queue, u64::MAX))? {
                let (key, value) = row?;
                if leased.contains(&(queue.to_owned(), key.value().1)) {
                    continue;
                }
                let (ready_at, _) = split_row(value.value());
                match (ready_at <= now, lane) {
                    (false, _) => depths.retrying += 1,
                    (true, Lane::Upload) => depths.upload += 1,
                    (true, Lane::Bulk) => depths.bulk += 1,
                }
            }
        }
        let dead = dead(JOBS);
        depths.dead = table
            .range((dead.as_str(), 0)..=(dead.as_str(), u64::MAX))?
            .count() as u64;
        Ok(depths)
    }

    fn settle(&self, queue: &str, seq: u64, then: Then) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        let row = txn
            .open_table(MESSAGES)?
            .remove((queue, seq))?
            .map(|row| row.value().to_vec());
        if let Some(row) = row {
            match then {
                Then::Remove => {}
                Then::MoveTo(target) => Self::push(
                    &txn,
                    &target,
                    row.get(8..).unwrap_or_default(),
                    Duration::ZERO,
                )?,
                Then::Replace { body, delay } => Self::push(&txn, queue, &body, delay)?,
            }
        }
        txn.commit()?;
        self.release(queue, seq);
        Ok(())
    }

    fn release(&self, queue: &str, seq: u64) {
        if let Ok(mut leased) = self.leased.lock() {
            leased.remove(&(queue.to_owned(), seq));
        }
        self.wake.notify_waiters();
    }
}

/// A row's ready-at time and body.
fn split_row(row: &[u8]) -> (u64, &[u8]) {
    let (ready_at, body) = row.split_at(8.min(row.len()));
    (
        u64::from_be_bytes(ready_at.try_into().unwrap_or([0; 8])),
        body,
    )
}

impl EmbeddedQueue {
    /// Opens (or creates) `DATA_DIR/queue.redb`. Only one process can hold it.
    pub fn open_in(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("queue.redb");
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let db = Database::create(&path)
            .with_context(|| format!("cannot open the job queue {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(MESSAGES)?;
        txn.open_table(SEQUENCE)?;
        let listeners = txn
            .open_table(LISTENERS)?
            .iter()?
            .map(|row| row.map(|(name, _)| name.value().to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        txn.commit()?;
        let (live, _) = broadcast::channel(1024);
        Ok(EmbeddedQueue {
            shared: Arc::new(Shared {
                db,
                leased: Mutex::default(),
                wake: Notify::new(),
                live,
                listeners: Mutex::new(listeners),
            }),
        })
    }

    /// Rows waiting in `queue` (leased or not): `jobs`, `jobs.bulk`, `jobs.dead`, `events.NAME`, ….
    pub async fn depth(&self, queue: &str) -> anyhow::Result<usize> {
        let queue = queue.to_owned();
        blocking(&self.shared, move |shared| {
            let txn = shared.db.begin_read()?;
            let table = txn.open_table(MESSAGES)?;
            let count = table
                .range((queue.as_str(), 0)..=(queue.as_str(), u64::MAX))?
                .count();
            Ok(count)
        })
        .await
    }

    /// Hands out the rows of `queues`, the first queue's before the next's; what cannot be
    /// handled is moved to `dead`.
    fn receiver(&self, queues: &[&str], dead: String, prefetch: u16) -> Receiver {
        Receiver {
            shared: self.shared.clone(),
            queues: queues.iter().map(|queue| (*queue).to_owned()).collect(),
            dead,
            permits: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
        }
    }
}

/// Hands out the rows of its queues, at most `permits` unsettled at once.
struct Receiver {
    shared: Arc<Shared>,
    /// Read in this order: a row of a later queue only when no earlier one has a ready row.
    queues: Vec<String>,
    dead: String,
    permits: Arc<Semaphore>,
}

impl Receiver {
    async fn next(&mut self) -> anyhow::Result<(Lease, Vec<u8>)> {
        // A slot first, then a row: a row is leased only to be handled at once, so an upload
        // that arrives while every slot is busy is the next row leased.
        let permit = self.permits.clone().acquire_owned().await?;
        loop {
            // Registered before looking, so a row added meanwhile still wakes us.
            let woken = self.shared.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (shared, queues) = (self.shared.clone(), self.queues.clone());
            // Should this `next` be cut short while the claim runs, the claim still finishes
            // on the blocking pool; its `Held` is then dropped there, which frees the row.
            let claim = tokio::task::spawn_blocking(move || shared.claim(&queues)).await??;
            let wait = match claim {
                Claim::Got { held, body } => {
                    let lease = Lease {
                        held,
                        dead: self.dead.clone(),
                        _permit: permit,
                    };
                    return Ok((lease, body));
                }
                Claim::Wait(due) => due.unwrap_or(Duration::from_secs(60)),
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A row this process holds: nobody else is handed it until this is dropped. Dropping it
/// unsettled (its handler died, or the `next` that claimed it was cut short) lets the row go
/// again; dropping it settled is harmless, as a settled row is gone and its number is never
/// used again.
struct Held {
    shared: Arc<Shared>,
    /// The queue the row is in (a job's lane), where a retry goes too.
    queue: String,
    seq: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.release(&self.queue, self.seq);
    }
}

/// One delivered row, and the slot it takes.
struct Lease {
    held: Held,
    /// Where the row goes when given up on.
    dead: String,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    async fn settle(&self, then: Then) -> anyhow::Result<()> {
        let (queue, seq) = (self.held.queue.clone(), self.held.seq);
        blocking(&self.held.shared, move |shared| {
            shared.settle(&queue, seq, then)
        })
        .await
    }
}

#[async_trait]
impl Settle for Lease {
    async fn ack(&self) -> anyhow::Result<()> {
        self.settle(Then::Remove).await
    }

    async fn retry(&self, next: &Job, delay: Duration) -> anyhow::Result<()> {
        let body = serde_json::to_vec(next)?;
        self.settle(Then::Replace { body, delay }).await
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        self.settle(Then::MoveTo(self.dead.clone())).await
    }
}

#[async_trait]
impl SettleEvent for Lease {
    async fn ack(&self) -> anyhow::Result<()> {
        self.settle(Then::Remove).await
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        self.settle(Then::MoveTo(self.dead.clone())).await
    }
}

impl Receiver {
    /// The next row that reads as a `T`; one that does not is dead-lettered on the spot, as
    /// retrying cannot make it readable. `None` when the store cannot be read.
    async fn next_readable<T: serde::de::DeserializeOwned>(&mut self) -> Option<(T, Lease)> {
        loop {
            let (lease, body) = match self.next().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(queues = ?self.queues, "cannot read the queue: {error:#}");
                    return None;
                }
            };
            match serde_json::from_slice(&body) {
                Ok(value) => return Some((value, lease)),
                Err(error) => {
                    tracing::error!(queue = %lease.held.queue, "unreadable message dead-lettered: {error}");
                    if let Err(error) = lease.settle(Then::MoveTo(self.dead.clone())).await {
                        tracing::error!("cannot dead-letter it: {error:#}");
                        return None;
                    }
                }
            }
        }
    }
}

struct EmbeddedJobs(Receiver);

#[async_trait]
impl JobStream for EmbeddedJobs {
    async fn next(&mut self) -> Option<Delivery> {
        let (job, lease) = self.0.next_readable().await?;
        Some(Delivery {
            job,
            settle: Box::new(lease),
        })
    }

    async fn close(self: Box<Self>) {}
}

struct DurableEvents(Receiver);

#[async_trait]
impl EventStream for DurableEvents {
    async fn next(&mut self) -> Option<EventDelivery> {
        let (event, lease) = self.0.next_readable().await?;
        Some(EventDelivery {
            event,
            settle: Box::new(lease),
        })
    }
}

/// Live events are only acknowledged by being seen: nothing to settle.
struct Seen;

#[async_trait]
impl SettleEvent for Seen {
    async fn ack(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

struct LiveEvents(broadcast::Receiver<Event>);

#[async_trait]
impl EventStream for LiveEvents {
    async fn next(&mut self) -> Option<EventDelivery> {
        loop {
            match self.0.recv().await {
                Ok(event) => {
                    return Some(EventDelivery {
                        event,
                        settle: Box::new(Seen),
                    })
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live listener fell behind; events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn prepare(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        blocking(&self.shared, |shared| {
            shared.db.begin_read()?.open_table(MESSAGES)?;
            Ok(())
        })
        .await
    }

    async fn publish(&self, job: &Job) -> anyhow::Result<()> {
        let body = serde_json::to_vec(job)?;
        let queue = lane_queue(job.lane);
        blocking(&self.shared, move |shared| shared.enqueue(&[queue], &body)).await
    }

    async fn consume(&self, prefetch: u16) -> anyhow::Result<Box<dyn JobStream>> {
        let lanes = Lane::ALL.map(lane_queue);
        Ok(Box::new(EmbeddedJobs(self.receiver(
            &lanes,
            dead(JOBS),
            prefetch,
        ))))
    }

    async fn depths(&self) -> anyhow::Result<Depths> {
        blocking(&self.shared, |shared| shared.depths()).await
    }

    async fn publish_event(&self, event: &Event) -> anyhow::Result<()> {
        // No live listener is fine: nobody has the page open.
        let _ = self.shared.live.send(event.clone());
        if !matches!(event.kind, EventKind::Done | EventKind::Failed) {
            return Ok(());
        }
        let queues: Vec<String> = self
            .shared
            .listeners
            .lock()
            .map_err(|_| anyhow!("listener list poisoned"))?
            .iter()
            .map(|name| listener_queue(name))
            .collect();
        if queues.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(event)?;
        blocking(&self.shared, move |shared| {
            let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
            shared.enqueue(&queues, &body)
        })
        .await
    }

    async fn subscribe_events(&self, listener: Listener) -> anyhow::Result<Box<dyn EventStream>> {
        let (name, prefetch) = match listener {
            Listener::Live => return Ok(Box::new(LiveEvents(self.shared.live.subscribe()))),
            Listener::Durable { name, prefetch } => (name, prefetch),
        };
        let registered = name.clone();
        blocking(&self.shared, move |shared| {
            let txn = shared.db.begin_write()?;
            txn.open_table(LISTENERS)?.insert(registered.as_str(), 0)?;
            txn.commit()?;
            let mut listeners = shared
                .listeners
                .lock()
                .map_err(|_| anyhow!("listener list poisoned"))?;
            if !listeners.contains(&registered) {
                listeners.push(registered);
            }
            Ok(())
        })
        .await?;
        let queue = listener_queue(&name);
        Ok(Box::new(DurableEvents(self.receiver(
            &[&queue],
            dead(&queue),
            prefetch,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    use crate::domain::PhotoId;

    /// The worker and the notifier cut a waiting `next` short when they stop; a row claimed
    /// by it just then must go to the next consumer, not stay held until the process ends.
    #[tokio::test]
    async fn a_row_claimed_by_a_next_cut_short_goes_to_the_next_consumer() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("gallery-queue-{}", PhotoId::new().as_str()));
        let queue = EmbeddedQueue::open_in(&dir)?;
        let job = Job {
            photo_id: PhotoId::new(),
            ops: Vec::new(),
            attempt: 1,
            lane: Lane::Upload,
            baseline: 0,
            original_bytes: None,
        };
        queue.publish(&job).await?;
        let mut jobs = queue.consume(1).await?;
        {
            // Holding the lease table, the claim started by one poll of `next` waits for it
            // on the blocking pool; the `next` is dropped meanwhile, and the claim then
            // finishes for nobody.
            let table = queue
                .shared
                .leased
                .lock()
                .map_err(|_| anyhow!("lease table poisoned"))?;
            assert!(jobs.next().now_or_never().is_none());
            drop(table);
        }
        let delivery = tokio::time::timeout(Duration::from_secs(10), jobs.next())
            .await
            .map_err(|_| anyhow!("the row stayed held by the claim of the dropped next"))?
            .ok_or_else(|| anyhow!("the stream ended"))?;
        assert_eq!(delivery.job, job);
        delivery.settle.ack().await?;
        assert_eq!(queue.depth(JOBS).await?, 0);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
