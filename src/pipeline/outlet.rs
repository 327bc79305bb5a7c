//! The live outlet of a portal × stream and its lanes: fan-out to every attached sink with
//! backpressure bounded by [`DETACH_GRACE`], detaching a failed or stuck sink, and the fence at
//! which a chaser hands a sink back (issue 19). See [`Outlet`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{Closed, Commit, Delivery, SinkStats};
use crate::cursor::Cursor;
use crate::event::{Event, Stream};

/// How long the live poller waits on a sink whose queue is full before it detaches that sink
/// (and how long it waits for a chaser to reach its fence when the sink rejoins).
pub const DETACH_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// One sink as a poller sees it: its queue, its committer for this portal/stream, its stats.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The sink's name.
    pub name: String,
    /// The sink's queue (shared by every poller).
    pub tx: mpsc::Sender<Delivery>,
    /// The committer of this portal × stream × sink.
    pub commits: mpsc::Sender<Commit>,
    /// The sink's stats (`failed` is read here).
    pub stats: Arc<SinkStats>,
}

/// A sink the live poller stopped feeding; its chaser reads DocSpace again from `from` (the
/// cursor of the last batch queued to it).
#[derive(Debug)]
pub struct Detached {
    /// Index of the lane in the live outlet.
    pub lane: usize,
    /// The lane itself (for the chaser's outlet).
    pub sink: Lane,
    /// Where the chaser starts.
    pub from: Arc<Cursor>,
}

/// A chaser that reached the live position asks to rejoin.
#[derive(Debug)]
pub struct Rejoin {
    /// Index of the lane in the live outlet.
    pub lane: usize,
    /// Where the live poller answers with its fence.
    pub fence: oneshot::Sender<Fence>,
}

/// The live poller's answer: it stopped at `cursor`; the chaser reads up to its watermark,
/// queues that, then sends `done`, and the live poller feeds the sink again from its next
/// batch.
#[derive(Debug)]
pub struct Fence {
    /// The cursor of the live poller's last batch.
    pub cursor: Arc<Cursor>,
    /// Sent by the chaser once everything up to the fence is queued to the sink.
    pub done: oneshot::Sender<()>,
}

/// Where a poller sends its batches: every attached sink's queue and committer.
///
/// The live outlet detaches a sink that its loop marked failed, or whose queue stays full for
/// [`DETACH_GRACE`]: the others go on, and the poller starts a chaser for it
/// ([`Outlet::take_detached`]). A chaser's outlet feeds one sink and never detaches it (it only
/// holds that sink back). On the steady path a batch costs one `try_send` per sink and one
/// commit per sink: nothing per event.
#[derive(Debug)]
pub struct Outlet {
    lanes: Vec<(Lane, bool)>,
    /// The cursor of the last batch emitted (the fence a rejoining chaser reads up to).
    last: Arc<Cursor>,
    /// Whether a full or failed sink is detached (the live outlet) or waited for (a chaser's).
    detaching: bool,
    detached: Vec<Detached>,
    rejoin_tx: mpsc::Sender<Rejoin>,
    rejoin_rx: mpsc::Receiver<Rejoin>,
    /// For logs.
    portal: String,
    stream: Stream,
}

impl Drop for Outlet {
    /// A stopped live poller holds no sink back any more: a portal stopped on reload must not
    /// leave its detached sinks `catching_up` for good.
    fn drop(&mut self) {
        if self.detaching {
            for (lane, attached) in &self.lanes {
                if !*attached {
                    lane.stats.detached.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Outlet {
    /// The live outlet of a portal/stream starting at `start`. A lane given with a cursor of its
    /// own (behind `start`) starts detached, its chaser from there.
    pub fn live(
        portal: &str,
        stream: Stream,
        lanes: Vec<(Lane, Option<Cursor>)>,
        start: &Cursor,
    ) -> Outlet {
        let (rejoin_tx, rejoin_rx) = mpsc::channel(lanes.len().max(1));
        let mut out = Outlet {
            lanes: Vec::with_capacity(lanes.len()),
            last: Arc::new(start.clone()),
            detaching: true,
            detached: Vec::new(),
            rejoin_tx,
            rejoin_rx,
            portal: portal.to_owned(),
            stream,
        };
        for (i, (lane, behind)) in lanes.into_iter().enumerate() {
            match behind {
                Some(from) => {
                    lane.stats.detached.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(portal = %portal, stream = %stream, sink = %lane.name, watermark = %crate::event::format_utc_seconds(from.watermark), "the sink is behind the others: it catches up on its own");
                    out.detached.push(Detached {
                        lane: i,
                        sink: lane.clone(),
                        from: Arc::new(from),
                    });
                    out.lanes.push((lane, false));
                }
                None => out.lanes.push((lane, true)),
            }
        }
        out
    }

    /// A chaser's outlet: one sink, never detached.
    pub fn chaser(portal: &str, stream: Stream, lane: Lane, start: Arc<Cursor>) -> Outlet {
        let (rejoin_tx, rejoin_rx) = mpsc::channel(1);
        Outlet {
            lanes: vec![(lane, true)],
            last: start,
            detaching: false,
            detached: Vec::new(),
            rejoin_tx,
            rejoin_rx,
            portal: portal.to_owned(),
            stream,
        }
    }

    /// Where a chaser asks to rejoin this (live) outlet.
    pub fn rejoin_sender(&self) -> mpsc::Sender<Rejoin> {
        self.rejoin_tx.clone()
    }

    /// The sinks detached since the last call, for their chasers.
    pub fn take_detached(&mut self) -> Vec<Detached> {
        std::mem::take(&mut self.detached)
    }

    /// Sends a batch to every attached sink (see the type's doc for full and failed sinks),
    /// then queues its cursor for each sink's commit. An empty batch only moves the cursors,
    /// still in order. Before the batch, chasers that reached the live position rejoin.
    pub async fn emit(&mut self, events: Vec<Event>, cursor: Cursor) -> Result<(), Closed> {
        if self.detaching {
            self.serve_rejoins().await;
        }
        let n = events.len();
        let events = Arc::new(events);
        let cursor = Arc::new(cursor);
        let grace = self.detaching.then_some(DETACH_GRACE);
        for i in 0..self.lanes.len() {
            let (lane, attached) = &self.lanes[i];
            if !*attached {
                continue;
            }
            if self.detaching && lane.stats.failed.load(Ordering::Relaxed) {
                self.detach(i, "the sink failed");
                continue;
            }
            let (done, ack) = oneshot::channel();
            if n == 0 {
                let _ = done.send(());
            } else {
                let d = Delivery {
                    events: events.clone(),
                    done,
                };
                if !offer(&lane.tx, d, grace).await? {
                    self.detach(i, "its queue stayed full");
                    continue;
                }
            }
            let c = Commit {
                cursor: cursor.clone(),
                acks: vec![ack],
                events: n,
            };
            if !offer(&self.lanes[i].0.commits, c, grace).await? {
                self.detach(i, "its acknowledgements stopped");
            }
        }
        self.last = cursor;
        Ok(())
    }

    fn detach(&mut self, i: usize, why: &str) {
        let (lane, attached) = &mut self.lanes[i];
        *attached = false;
        lane.stats.detached.fetch_add(1, Ordering::Relaxed);
        warn!(portal = %self.portal, stream = %self.stream, sink = %lane.name, watermark = %crate::event::format_utc_seconds(self.last.watermark), "sink detached ({why}): the other sinks go on; it catches up from DocSpace once it recovers");
        self.detached.push(Detached {
            lane: i,
            sink: lane.clone(),
            from: self.last.clone(),
        });
    }

    /// At a batch boundary: answers each chaser that asked to rejoin with the current cursor
    /// as its fence, and waits (at most [`DETACH_GRACE`]) until it queued everything up to it.
    async fn serve_rejoins(&mut self) {
        while let Ok(req) = self.rejoin_rx.try_recv() {
            let (done, mut reached) = oneshot::channel();
            let fence = Fence {
                cursor: self.last.clone(),
                done,
            };
            if req.fence.send(fence).is_err() {
                continue;
            }
            let ok = match tokio::time::timeout(DETACH_GRACE, &mut reached).await {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    // Closed first, so the chaser's send fails unless it came before: both
                    // sides then agree on whether the sink rejoined.
                    reached.close();
                    reached.try_recv().is_ok()
                }
            };
            let Some((lane, attached)) = self.lanes.get_mut(req.lane) else {
                continue;
            };
            if ok {
                *attached = true;
                lane.stats.detached.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(portal = %self.portal, stream = %self.stream, sink = %lane.name, "sink rejoined: the live poller feeds it again");
            } else {
                tracing::info!(portal = %self.portal, stream = %self.stream, sink = %lane.name, "sink did not reach the live position in time: it goes on catching up");
            }
        }
    }
}

/// Queues `item`: at once when there is room; else waits, at most `grace` (`Ok(false)` after
/// it), or for good without one.
async fn offer<T>(
    tx: &mpsc::Sender<T>,
    item: T,
    grace: Option<std::time::Duration>,
) -> Result<bool, Closed> {
    match tx.try_send(item) {
        Ok(()) => Ok(true),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        Err(mpsc::error::TrySendError::Full(item)) => match grace {
            None => tx.send(item).await.map(|()| true).map_err(|_| Closed),
            Some(g) => match tokio::time::timeout(g, tx.send(item)).await {
                Ok(Ok(())) => Ok(true),
                Ok(Err(_)) => Err(Closed),
                Err(_) => Ok(false),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::COMMIT_QUEUE;
    use serde_json::json;
    use time::OffsetDateTime;

    fn event(id: i64) -> Event {
        Event::from_json(
            Arc::new(crate::event::PortalInfo::new("p", "https://x")),
            Some(Stream::Login),
            json!({"id": id, "date": "2025-01-01T10:00:00Z", "actionId": 5011}),
        )
        .expect("valid")
    }

    fn at(t: i64) -> Cursor {
        Cursor::at(OffsetDateTime::from_unix_timestamp(t).expect("time"))
    }

    /// A lane with a queue of `cap` batches, and the ends the test reads.
    fn lane(
        name: &str,
        cap: usize,
    ) -> (
        Lane,
        mpsc::Receiver<Delivery>,
        mpsc::Receiver<Commit>,
        Arc<SinkStats>,
    ) {
        let (tx, rx) = mpsc::channel(cap);
        let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
        let stats = Arc::new(SinkStats::default());
        let lane = Lane {
            name: name.to_owned(),
            tx,
            commits: ctx,
            stats: stats.clone(),
        };
        (lane, rx, crx, stats)
    }

    /// A portal stopped on reload drops its live outlets: a sink they held detached is no
    /// longer `catching_up` for it.
    #[test]
    fn a_dropped_live_outlet_releases_the_sinks_it_held_detached() {
        let (behind, _rx, _crx, stats) = lane("behind", 1);
        let (good, _good_rx, _good_crx, good_stats) = lane("good", 1);
        let out = Outlet::live(
            "p",
            Stream::Login,
            vec![(behind, Some(at(0))), (good, None)],
            &at(5),
        );
        assert_eq!(stats.state(), "catching_up");
        // A chaser's outlet feeds that sink and never detached it: dropping it changes nothing.
        let chasing = Lane {
            stats: stats.clone(),
            ..lane("behind", 1).0
        };
        drop(Outlet::chaser("p", Stream::Login, chasing, Arc::new(at(0))));
        assert_eq!(stats.state(), "catching_up");
        drop(out);
        assert_eq!((stats.state(), good_stats.state()), ("live", "live"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sink_is_detached_after_the_grace_and_a_chaser_rejoins_at_the_fence() {
        let (stuck, mut stuck_rx, mut stuck_commits, stuck_stats) = lane("stuck", 1);
        let (good, mut good_rx, _good_commits, _) = lane("good", 8);
        let mut out = Outlet::live(
            "p",
            Stream::Login,
            vec![(stuck, None), (good, None)],
            &at(0),
        );
        out.emit(vec![event(1)], at(1)).await.expect("emit");
        assert!(out.take_detached().is_empty());
        // The stuck sink's queue is full: after the grace it is detached, the other goes on.
        let t0 = tokio::time::Instant::now();
        out.emit(vec![event(2)], at(2)).await.expect("emit");
        assert!(t0.elapsed() >= DETACH_GRACE);
        let detached = out.take_detached();
        assert_eq!(detached.len(), 1);
        assert_eq!(detached[0].lane, 0);
        assert_eq!(
            detached[0].from.watermark.unix_timestamp(),
            1,
            "the chaser starts after the last batch queued to it"
        );
        assert_eq!(stuck_stats.state(), "catching_up");
        // Later batches do not wait for it.
        let t1 = tokio::time::Instant::now();
        out.emit(vec![event(3)], at(3)).await.expect("emit");
        assert_eq!(t1.elapsed(), std::time::Duration::ZERO);
        for want in 1..=3 {
            let d = good_rx.recv().await.expect("good gets every batch");
            assert_eq!(d.events[0].id, want);
        }
        // The queued batch stays for the stuck sink; its commit is its only one.
        assert_eq!(stuck_rx.recv().await.expect("queued").events[0].id, 1);
        assert_eq!(
            stuck_commits
                .recv()
                .await
                .expect("commit")
                .cursor
                .watermark
                .unix_timestamp(),
            1
        );
        // A chaser asks to rejoin: the fence is the live cursor; once it says it reached it,
        // the live poller feeds the sink again from its next batch.
        let rejoin = out.rejoin_sender();
        let chaser = tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            rejoin
                .send(Rejoin { lane: 0, fence: tx })
                .await
                .expect("asked");
            let fence = rx.await.expect("fence");
            let w = fence.cursor.watermark.unix_timestamp();
            fence.done.send(()).expect("the live poller waits");
            w
        });
        tokio::task::yield_now().await;
        out.emit(vec![event(4)], at(4)).await.expect("emit");
        assert_eq!(
            chaser.await.expect("chaser"),
            3,
            "fenced at the live cursor"
        );
        assert_eq!(stuck_stats.state(), "live");
        assert_eq!(stuck_rx.recv().await.expect("rejoined").events[0].id, 4);
        assert_eq!(
            stuck_commits
                .recv()
                .await
                .expect("commit")
                .cursor
                .watermark
                .unix_timestamp(),
            4
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sink_is_detached_at_once() {
        let (failed, _rx, _commits, stats) = lane("failed", 4);
        let (good, mut good_rx, _good_commits, _) = lane("good", 4);
        stats.failed.store(true, Ordering::Relaxed);
        let mut out = Outlet::live(
            "p",
            Stream::Login,
            vec![(failed, None), (good, None)],
            &at(0),
        );
        let t0 = tokio::time::Instant::now();
        out.emit(vec![event(1)], at(1)).await.expect("emit");
        assert_eq!(t0.elapsed(), std::time::Duration::ZERO);
        assert_eq!(out.take_detached().len(), 1);
        assert_eq!(stats.state(), "failed");
        assert_eq!(good_rx.recv().await.expect("good").events[0].id, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_behind_the_others_starts_detached_from_its_own_cursor() {
        let (behind, _rx, _commits, stats) = lane("behind", 4);
        let out_lanes = vec![(behind, Some(at(5)))];
        let mut out = Outlet::live("p", Stream::Login, out_lanes, &at(9));
        let d = out.take_detached();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].from.watermark.unix_timestamp(), 5);
        assert_eq!(stats.state(), "catching_up");
    }
}
