//! The second phase of ending a transaction: once PrepareCommit/PrepareAbort is saved,
//! write a marker to every partition of the transaction (on each partition's owner)
//! and, on commit, commit its offsets to their groups; then save CompleteCommit/
//! CompleteAbort. On an error the entry stays in its Prepare phase and the tick tries
//! again, writing only the markers still missing.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use tracing::warn;

use super::peers::Marker;
use super::state::{PendingOffset, Phase, TxnEntry};
use super::{Coordinator, MarkedPartitions};
use crate::coordinator::group::{CommitPartition, CommitRequest};
use crate::kafka::{ErrorCode, TopicPartition};

impl Coordinator {
    /// Second phase of an entry saved in PrepareCommit/PrepareAbort: write the markers (and
    /// the offsets, on commit), then save it as CompleteCommit/CompleteAbort. On an error the
    /// entry stays in its Prepare phase and the tick tries again.
    ///
    /// The caller has put the id in `completing` (in the change that saved the Prepare
    /// phase, or under the gate); this removes it when done.
    pub(super) async fn complete(&self, entry: TxnEntry) -> Result<(), ErrorCode> {
        let id = entry.transactional_id.clone();
        let r = self.complete_marked(&entry).await;
        self.completing.borrow_mut().remove(&id);
        if r.is_ok() {
            self.marked.borrow_mut().remove(&id);
            self.retry.borrow_mut().remove(&id);
        }
        r
    }

    pub(super) async fn complete_marked(&self, entry: &TxnEntry) -> Result<(), ErrorCode> {
        let id = entry.transactional_id.clone();
        // Only the saved state counts: an entry that changed since (finished by another
        // path) is left alone.
        let current = self.entry(&id);
        let same = |e: &TxnEntry| {
            e.producer_id == entry.producer_id && e.epoch == entry.epoch && e.phase == entry.phase
        };
        if !current.as_ref().is_some_and(same) {
            return Ok(());
        }
        self.write_markers(entry).await?;
        if entry.phase == Phase::PrepareCommit {
            self.commit_offsets(entry).await?;
        }
        let commit = entry.phase == Phase::PrepareCommit;
        self.update(&id, |old| {
            let Some(e) = old else { return Ok((None, ())) };
            if e.producer_id != entry.producer_id
                || e.epoch != entry.epoch
                || e.phase != entry.phase
            {
                return Ok((None, ())); // someone else finished it
            }
            let mut n = e.clone();
            n.clear();
            n.phase = if commit {
                Phase::CompleteCommit
            } else {
                Phase::CompleteAbort
            };
            Ok((Some(n), ()))
        })
        .await
    }

    /// The markers of `e`'s transaction on every partition of it whose marker is not
    /// written yet (a retry writes only the missing ones).
    pub(super) async fn write_markers(&self, e: &TxnEntry) -> Result<(), ErrorCode> {
        let marker = Marker {
            producer_id: e.producer_id,
            epoch: e.epoch,
            commit: e.phase == Phase::PrepareCommit,
        };
        let id = e.transactional_id.clone();
        let done: HashSet<TopicPartition> = match self.marked.borrow().get(&id) {
            Some(m) if (m.producer_id, m.epoch) == (marker.producer_id, marker.epoch) => {
                m.done.clone()
            }
            _ => HashSet::new(),
        };
        let markers = e
            .partitions
            .iter()
            .map(|(t, p)| TopicPartition::new(t.as_str(), *p))
            .filter(|tp| !done.contains(tp))
            .map(|tp| async move {
                let r = self.peers.write_marker(tp.clone(), marker).await;
                (tp, r)
            });
        let results = join_all(markers).await;
        let mut failed = None;
        let mut marked = self.marked.borrow_mut();
        let slot = marked.entry(id).or_insert_with(|| MarkedPartitions {
            producer_id: marker.producer_id,
            epoch: marker.epoch,
            done: HashSet::new(),
        });
        if (slot.producer_id, slot.epoch) != (marker.producer_id, marker.epoch) {
            *slot = MarkedPartitions {
                producer_id: marker.producer_id,
                epoch: marker.epoch,
                done: HashSet::new(),
            };
        }
        for (tp, r) in results {
            match r {
                Ok(()) => {
                    slot.done.insert(tp);
                }
                // The partition knows a newer epoch of this producer: its transaction there
                // was ended by a later marker already.
                Err(err) if err.code == ErrorCode::ProducerFenced => {
                    warn!(transactional_id = %e.transactional_id, partition = %tp,
                      "transaction marker fenced by a newer epoch; counted as written");
                    slot.done.insert(tp);
                }
                Err(err) => {
                    warn!(transactional_id = %e.transactional_id, partition = %tp,
                      "writing the transaction marker failed: {}", err.message);
                    failed = Some(err.code);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// A committed transaction's offsets, committed to each of their groups.
    pub(super) async fn commit_offsets(&self, e: &TxnEntry) -> Result<(), ErrorCode> {
        let mut by_group: HashMap<&str, Vec<&PendingOffset>> = HashMap::new();
        for o in &e.offsets {
            by_group.entry(&o.group).or_default().push(o);
        }
        for (group, offsets) in by_group {
            let req = CommitRequest {
                group: group.to_string(),
                member_id: String::new(),
                generation_or_epoch: -1,
                instance_id: None,
                topics: commit_topics(offsets),
            };
            let codes = self.peers.commit_offsets(req).await?;
            if let Some(code) = codes
                .iter()
                .flat_map(|(_, ps)| ps.iter().map(|&(_, c)| c))
                .find(|&c| c != ErrorCode::None && c != ErrorCode::UnknownTopicOrPartition)
            {
                warn!(transactional_id = %e.transactional_id, group,
                  "committing the transaction's offsets failed with code {code}");
                return Err(code);
            }
        }
        Ok(())
    }
}

/// Pending offsets of one group, by topic.
fn commit_topics(offsets: Vec<&PendingOffset>) -> Vec<(String, Vec<CommitPartition>)> {
    let mut topics: Vec<(String, Vec<CommitPartition>)> = Vec::new();
    for o in offsets {
        let cp = CommitPartition {
            partition: o.partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
        };
        match topics.iter_mut().find(|(t, _)| *t == o.topic) {
            Some((_, ps)) => ps.push(cp),
            None => topics.push((o.topic.clone(), vec![cp])),
        }
    }
    topics
}
