//! Log compaction (`cleanup.policy=compact`, Kafka's LogCleaner): what a cleaning pass of
//! one partition keeps, and the pass itself. The log moves the bytes and swaps the
//! cleaned segments in crash-safely (`log::cleaner`); the partition manager runs passes
//! in a low-share task queue, dirtiest partition first (`manager`).
//!
//! A pass over the cleanable sealed segments — from the log start up to the first
//! segment that holds the last stable offset, records newer than `min.compaction.lag.ms`,
//! or the active segment — builds a map of key → last offset over the dirty part (what
//! was written since the last pass), bounded by `cleaner_map_bytes` (a dirty part that
//! does not fit is cleaned over several passes), then rewrites the segments up to where
//! the map ends, keeping (Kafka's rules):
//! - the last record of every key, and every record past the map's end;
//! - a tombstone (null value) until its batch's delete horizon (KIP-534: set to now +
//!   `delete.retention.ms` by the first pass that keeps it) has passed;
//! - no record of an aborted transaction; a transaction marker until no record of its
//!   transaction is left and then its own delete horizon has passed;
//! - no record without a key (a compacted log cannot hold one);
//! - a producer's last batch, emptied if need be, so its sequence survives (KIP-98).
//!
//! A batch that keeps all its records (and needs no horizon) is copied as it is; another
//! is re-encoded in its own codec with its base offset, last offset delta, producer id,
//! epoch and base sequence (`records::rebuild`).

pub mod checkpoint;
#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod race_tests;
pub mod records;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::kafka::{ErrorCode, KafkaError};
use crate::log::batch::{self, CONTROL_BIT, TRANSACTIONAL_BIT};
use crate::log::cleaner::SealedSegment;
use crate::log::PartitionLog;

use super::producer::state::ProducerTable;

/// Heap bytes one entry of the offset map takes (a 128-bit key hash, an offset, and the
/// hash table's own overhead), to size the map from `cleaner_map_bytes`.
pub const MAP_ENTRY_BYTES: usize = 40;

/// How the shard's cleaner runs (broker config).
#[derive(Debug, Clone, Copy)]
pub struct CleanerConfig {
    /// Memory for one pass's key → offset map.
    pub map_bytes: usize,
    /// Read plus written bytes per second a pass may use; 0 is no limit (the low-share
    /// task queue still bounds its CPU).
    pub io_bytes_per_sec: u64,
}

/// A partition's cleaning state; `first_dirty` and `next_horizon` are saved after every
/// complete pass and loaded when the partition opens (`checkpoint`).
#[derive(Debug, Default)]
pub struct CleanerState {
    /// Offsets below this were in the map of a finished pass (Kafka's cleaner checkpoint).
    first_dirty: Cell<i64>,
    /// The earliest delete horizon a pass left in the log: a reason for the next pass.
    next_horizon: Cell<Option<i64>>,
    /// After a failed pass the partition waits until then.
    retry_at: Cell<i64>,
}

/// Key → offset of its last record in the dirty part, keyed by a 128-bit hash of the key
/// (as Kafka keys its map by an MD5 of the key), holding at most `capacity` keys.
pub struct OffsetMap {
    map: HashMap<u128, i64, ahash::RandomState>,
    capacity: usize,
    h1: ahash::RandomState,
    h2: ahash::RandomState,
}

impl OffsetMap {
    pub fn new(map_bytes: usize) -> Self {
        OffsetMap {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            capacity: (map_bytes / MAP_ENTRY_BYTES).max(1),
            h1: ahash::RandomState::with_seeds(1, 2, 3, 4),
            h2: ahash::RandomState::with_seeds(5, 6, 7, 8),
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        ((self.h1.hash_one(key) as u128) << 64) | self.h2.hash_one(key) as u128
    }

    pub fn put(&mut self, key: &[u8], offset: i64) {
        let h = self.hash(key);
        self.map.insert(h, offset);
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&self.hash(key)).copied()
    }

    /// Whether `n` more keys might not fit.
    pub fn full_for(&self, n: usize) -> bool {
        self.map.len() + n > self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The transactions and producers a pass must respect, from the producer state.
#[derive(Debug, Default, Clone)]
pub struct TxnView {
    /// Aborted transactions per producer: (first offset, marker offset).
    pub aborted: HashMap<i64, Vec<(i64, i64)>>,
    /// Base offsets of every live producer's last batch.
    pub last_batches: HashSet<i64>,
}

impl TxnView {
    pub fn of(table: &ProducerTable) -> TxnView {
        let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in table.aborted_in(i64::MIN, i64::MAX) {
            aborted
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        let last_batches = table
            .entries()
            .iter()
            .filter_map(|e| e.batches.back().map(|b| b.base_offset))
            .collect();
        TxnView {
            aborted,
            last_batches,
        }
    }

    fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        self.aborted
            .get(&producer_id)
            .is_some_and(|v| v.iter().any(|&(f, l)| (f..l).contains(&offset)))
    }
}

/// What becomes of one batch.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Keep,
    Drop,
    Write(Vec<u8>),
}

/// One pass's decisions, batch by batch in log order.
pub struct Pass<'a> {
    map: &'a OffsetMap,
    txn: &'a TxnView,
    now: i64,
    delete_retention_ms: i64,
    /// Records at or past this were not in the map: kept.
    map_end: i64,
    /// Producers with a transaction whose marker is still to come: whether any of its
    /// records was kept.
    open: HashMap<i64, bool>,
    /// (producer id, offset) of every transaction marker the pass kept.
    kept_markers: HashSet<(i64, i64)>,
    pub next_horizon: Option<i64>,
}

impl<'a> Pass<'a> {
    pub fn new(
        map: &'a OffsetMap,
        txn: &'a TxnView,
        now: i64,
        delete_retention_ms: u64,
        map_end: i64,
    ) -> Self {
        Pass {
            map,
            txn,
            now,
            delete_retention_ms: delete_retention_ms.min(i64::MAX as u64 / 2) as i64,
            map_end,
            open: HashMap::new(),
            kept_markers: HashSet::new(),
            next_horizon: None,
        }
    }

    fn note_horizon(&mut self, h: i64) {
        self.next_horizon = Some(self.next_horizon.map_or(h, |n| n.min(h)));
    }

    async fn batch(&mut self, b: &[u8], pace: &mut Pace) -> Result<Verdict, KafkaError> {
        let base = batch::base_offset(b);
        let pid = batch::producer_id(b);
        let attributes = batch::attributes(b);
        if attributes & CONTROL_BIT != 0 {
            let kept_records = self.open.remove(&pid).unwrap_or(false);
            let verdict = match kept_records {
                true => Verdict::Keep,
                false => self.empty_marker(b)?,
            };
            if verdict != Verdict::Drop {
                self.kept_markers.insert((pid, base));
            }
            return Ok(verdict);
        }
        let transactional = attributes & TRANSACTIONAL_BIT != 0;
        if transactional && self.txn.is_aborted(pid, base) {
            return self.emptied(b);
        }
        let raw = records::section(b)?;
        let recs = records::parse(&raw, batch::records_count(b))?;
        let horizon = records::delete_horizon(b);
        let mut keep = Vec::with_capacity(recs.len());
        for (i, r) in recs.iter().enumerate() {
            if self.retain(r, base, horizon) {
                keep.push(*r);
            }
            pace.after_record(i).await;
        }
        if transactional {
            *self.open.entry(pid).or_default() |= !keep.is_empty();
        }
        let tombstones = keep.iter().any(|r| r.tombstone);
        let set_horizon = tombstones && horizon.is_none();
        if keep.is_empty() {
            return self.emptied(b);
        }
        let new_horizon = set_horizon.then(|| self.now.saturating_add(self.delete_retention_ms));
        if let Some(h) = new_horizon.or(horizon.filter(|_| tombstones)) {
            self.note_horizon(h);
        }
        if keep.len() == recs.len() && !set_horizon {
            return Ok(Verdict::Keep);
        }
        Ok(Verdict::Write(records::rebuild(b, &keep, new_horizon)?))
    }

    fn retain(&self, r: &records::Rec<'_>, base: i64, horizon: Option<i64>) -> bool {
        let Some(key) = r.key else {
            return false; // Kafka's cleaner drops a record without a key
        };
        let offset = base + r.offset_delta as i64;
        if offset >= self.map_end {
            return true;
        }
        if self.map.get(key).is_some_and(|last| offset < last) {
            return false;
        }
        !r.tombstone || horizon.is_none_or(|h| self.now < h)
    }

    /// A marker whose transaction has no record left: kept until its delete horizon.
    fn empty_marker(&mut self, b: &[u8]) -> Result<Verdict, KafkaError> {
        match records::delete_horizon(b) {
            Some(h) if self.now >= h => Ok(Verdict::Drop),
            Some(h) => {
                self.note_horizon(h);
                Ok(Verdict::Keep)
            }
            None => {
                let h = self.now.saturating_add(self.delete_retention_ms);
                self.note_horizon(h);
                let raw = records::section(b)?;
                let recs = records::parse(&raw, batch::records_count(b))?;
                Ok(Verdict::Write(records::rebuild(b, &recs, Some(h))?))
            }
        }
    }

    /// A batch with no record left: gone, unless it is a live producer's last batch
    /// (kept empty, for its sequence).
    fn emptied(&self, b: &[u8]) -> Result<Verdict, KafkaError> {
        if !self.txn.last_batches.contains(&batch::base_offset(b)) {
            return Ok(Verdict::Drop);
        }
        if batch::records_count(b) == 0 {
            return Ok(Verdict::Keep);
        }
        Ok(Verdict::Write(records::rebuild(b, &[], None)?))
    }
}

/// What a pass of a partition would clean now.
#[derive(Debug, Clone)]
pub struct Cleanable {
    /// The cleanable sealed segments, from the log start.
    pub segments: Vec<SealedSegment>,
    pub dirty_from: i64,
    pub dirty_bytes: u64,
    pub total_bytes: u64,
}

impl Cleanable {
    pub fn dirty_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        self.dirty_bytes as f64 / self.total_bytes as f64
    }

    pub fn end(&self) -> i64 {
        self.segments
            .last()
            .map_or(self.dirty_from, |s| s.next_offset)
    }
}

/// The cleanable part of a compacted partition's log (`lso`: its last stable offset), or
/// None (not compacted, nothing sealed and old enough).
pub fn cleanable(
    log: &PartitionLog,
    state: &CleanerState,
    lso: i64,
    now: i64,
) -> Option<Cleanable> {
    let cfg = log.config();
    if !cfg.cleanup.compact {
        return None;
    }
    let start = log.log_start_offset();
    let lag = cfg.min_compaction_lag_ms.min(i64::MAX as u64) as i64;
    let segments: Vec<SealedSegment> = log
        .sealed_segments()
        .into_iter()
        .filter(|s| s.next_offset > start)
        .take_while(|s| s.next_offset <= lso && (lag == 0 || s.max_timestamp <= now - lag))
        .collect();
    if segments.is_empty() {
        return None;
    }
    let first_dirty = state.first_dirty.get().max(segments[0].base_offset);
    let total_bytes = segments.iter().map(|s| s.size_bytes).sum();
    let dirty_bytes = segments
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .map(|s| s.size_bytes)
        .sum();
    Some(Cleanable {
        dirty_from: first_dirty,
        segments,
        dirty_bytes,
        total_bytes,
    })
}

/// Whether the partition should be cleaned now: its dirty ratio reached
/// `min.cleanable.dirty.ratio`, a dirty segment is older than `max.compaction.lag.ms`,
/// or a delete horizon passed. Returns the dirty ratio (the pick: dirtiest first).
pub fn due(log: &PartitionLog, state: &CleanerState, c: &Cleanable, now: i64) -> Option<f64> {
    if now < state.retry_at.get() {
        return None;
    }
    let cfg = log.config();
    let ratio = c.dirty_ratio();
    let max_lag = cfg.max_compaction_lag_ms.min(i64::MAX as u64) as i64;
    let overdue = c
        .segments
        .iter()
        .find(|s| s.next_offset > c.dirty_from)
        .is_some_and(|s| s.max_timestamp >= 0 && s.max_timestamp < now.saturating_sub(max_lag));
    let horizon = state.next_horizon.get().is_some_and(|h| h <= now);
    let dirty = c.dirty_bytes > 0 && (ratio >= cfg.min_cleanable_dirty_ratio || overdue);
    (dirty || horizon).then_some(ratio)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub segments_cleaned: usize,
    /// Aborted transactions forgotten because the pass removed their markers.
    pub aborts_forgotten: usize,
}

/// How long a pass runs before it rests (`Pace`).
const HAND_BACK_EVERY: Duration = Duration::from_micros(100);
/// How long it rests then: the pass takes at most half of its shard's time.
const REST: Duration = Duration::from_micros(100);

/// Paces a pass to `io_bytes_per_sec` and hands the shard back often.
///
/// `yield_if_needed` alone hands it back only when glommio's 10 ms preempt timer fires,
/// and only a sleep lets the shard's thread poll for I/O or leave the core: a pass rests
/// `REST` after every `HAND_BACK_EVERY` of work, looking at the clock after every batch
/// and every `RECORDS_PER_BREATH` records inside one. A request to its shard then waits
/// for the pass ~0.1 ms, at most a batch's parse and rebuild more (0.15–0.7 ms for a
/// 1 MiB batch), and the io_uring worker that writes the shard's appends, which shares
/// its core, can run in the rests instead of preempting the shard (perf/RESULTS.md has
/// the runs).
struct Pace {
    started: Instant,
    bytes: u64,
    rate: u64,
    handed_back: Instant,
}

impl Pace {
    async fn step(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.rate > 0 {
            let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
            let ahead = due.saturating_sub(self.started.elapsed());
            if ahead > Duration::from_millis(1) {
                glommio::timer::sleep(ahead).await;
                self.handed_back = Instant::now();
            }
        }
        self.breathe().await;
        glommio::yield_if_needed().await;
    }

    /// After the `i`th record of a batch: every `RECORDS_PER_BREATH` records, `breathe`,
    /// since one batch of a thousand records takes longer than `HAND_BACK_EVERY`.
    async fn after_record(&mut self, i: usize) {
        if i % RECORDS_PER_BREATH == RECORDS_PER_BREATH - 1 {
            self.breathe().await;
        }
    }

    /// Rests `REST` if the pass has worked `HAND_BACK_EVERY` since it last did.
    async fn breathe(&mut self) {
        if self.handed_back.elapsed() >= HAND_BACK_EVERY {
            glommio::timer::sleep(REST).await;
            self.handed_back = Instant::now();
        }
    }
}

/// Records handled between two looks at the clock (`Pace::after_record`).
const RECORDS_PER_BREATH: usize = 64;

fn gone(base: i64) -> KafkaError {
    KafkaError::new(
        ErrorCode::KafkaStorageError,
        format!("segment {base} went away while it was cleaned"),
    )
}

/// Maps the dirty part `[c.dirty_from, end)` into `map` until it is full; returns where
/// the map ends (the first offset it does not cover).
async fn build_map(
    log: &PartitionLog,
    c: &Cleanable,
    txn: &TxnView,
    map: &mut OffsetMap,
    pace: &mut Pace,
) -> Result<i64, KafkaError> {
    for s in c.segments.iter().filter(|s| s.next_offset > c.dirty_from) {
        let mut reader = log
            .read_sealed(s.base_offset)
            .ok_or_else(|| gone(s.base_offset))?;
        while let Some(b) = reader.next_batch().await? {
            let base = batch::base_offset(b);
            let attributes = batch::attributes(b);
            let pid = batch::producer_id(b);
            if base < c.dirty_from
                || attributes & CONTROL_BIT != 0
                || (attributes & TRANSACTIONAL_BIT != 0 && txn.is_aborted(pid, base))
            {
                continue;
            }
            let raw = records::section(b)?;
            let recs = records::parse(&raw, batch::records_count(b))?;
            if !map.is_empty() && map.full_for(recs.len()) {
                return Ok(base);
            }
            for (i, r) in recs.iter().enumerate() {
                if let Some(key) = r.key {
                    map.put(key, base + r.offset_delta as i64);
                }
                pace.after_record(i).await;
            }
            pace.step(b.len() as u64).await;
        }
    }
    Ok(c.end())
}

/// Consecutive segments to clean into one: their bytes fit a segment and their offsets
/// a segment's 32-bit relative offsets.
fn groups(segments: &[SealedSegment], segment_bytes: u64) -> Vec<Vec<SealedSegment>> {
    let mut out: Vec<Vec<SealedSegment>> = Vec::new();
    for s in segments {
        let fits = out.last().is_some_and(|g| {
            let bytes: u64 = g.iter().map(|x| x.size_bytes).sum();
            bytes + s.size_bytes <= segment_bytes
                && s.next_offset - g[0].base_offset <= u32::MAX as i64
        });
        match (fits, out.last_mut()) {
            (true, Some(g)) => g.push(*s),
            _ => out.push(vec![*s]),
        }
    }
    out
}

/// Cleans one group into one segment and swaps it in. False if the log changed under it.
/// The aborted transactions whose markers the group lost leave the producer state in the
/// same step as the swap (no await between: a fetch in between would read the cleaned
/// segment with the old entries): a read_committed fetch given an aborted transaction whose
/// ABORT marker it never reads skips every later batch of that producer (librdkafka's
/// and the Java client's rule), so the entry must go with the marker (Kafka's cleaner
/// rebuilds the segment's transaction index from the markers it keeps).
async fn clean_group(
    log: &PartitionLog,
    producers: &RefCell<ProducerTable>,
    group: &[SealedSegment],
    pass: &mut Pass<'_>,
    pace: &mut Pace,
    stats: &mut PassStats,
) -> Result<bool, KafkaError> {
    let (base, end) = (group[0].base_offset, group[group.len() - 1].next_offset);
    let mut cleaned = log.create_cleaned(base, end).await?;
    let res: Result<(), KafkaError> = async {
        for s in group {
            let mut reader = log
                .read_sealed(s.base_offset)
                .ok_or_else(|| gone(s.base_offset))?;
            while let Some(b) = reader.next_batch().await? {
                stats.bytes_read += b.len() as u64;
                let n = match pass.batch(b, pace).await? {
                    Verdict::Keep => {
                        cleaned.push(b).await?;
                        b.len()
                    }
                    Verdict::Drop => 0,
                    Verdict::Write(nb) => {
                        cleaned.push(&nb).await?;
                        nb.len()
                    }
                };
                stats.bytes_written += n as u64;
                pace.step((b.len() + n) as u64).await;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        cleaned.discard().await;
        return Err(e);
    }
    let kept = &pass.kept_markers;
    let mut forgotten = 0;
    let installed = log
        .install_cleaned(cleaned, || {
            forgotten = producers
                .borrow_mut()
                .forget_aborted_between(base, end, kept);
        })
        .await?;
    if installed {
        stats.segments_cleaned += group.len();
        stats.aborts_forgotten += forgotten;
    }
    Ok(installed)
}

/// One cleaning pass (see the module doc) of the log whose cleaning state is `state`,
/// with the transactions of `txn` and the last stable offset `lso`. None when there was
/// nothing to do.
pub async fn clean(
    log: &PartitionLog,
    state: &CleanerState,
    producers: &RefCell<ProducerTable>,
    lso: i64,
    config: CleanerConfig,
    now: i64,
) -> Result<Option<PassStats>, KafkaError> {
    let Some(c) = cleanable(log, state, lso, now) else {
        return Ok(None);
    };
    let res = clean_cleanable(log, state, producers, &c, config, now).await;
    if res.is_err() {
        state.retry_at.set(now + 60_000);
    }
    res.map(Some)
}

async fn clean_cleanable(
    log: &PartitionLog,
    state: &CleanerState,
    producers: &RefCell<ProducerTable>,
    c: &Cleanable,
    config: CleanerConfig,
    now: i64,
) -> Result<PassStats, KafkaError> {
    let txn = &TxnView::of(&producers.borrow());
    let cfg = log.config();
    let mut pace = Pace {
        started: Instant::now(),
        bytes: 0,
        rate: config.io_bytes_per_sec,
        handed_back: Instant::now(),
    };
    let mut map = OffsetMap::new(config.map_bytes);
    let map_end = build_map(log, c, txn, &mut map, &mut pace).await?;
    let todo: Vec<SealedSegment> = c
        .segments
        .iter()
        .copied()
        .filter(|s| s.base_offset < map_end || map_end == c.end())
        .collect();
    let mut pass = Pass::new(&map, txn, now, cfg.delete_retention_ms, map_end);
    let mut stats = PassStats::default();
    let mut complete = true;
    for g in groups(&todo, cfg.effective_segment_bytes()) {
        complete &= clean_group(log, producers, &g, &mut pass, &mut pace, &mut stats).await?;
    }
    if complete {
        state.first_dirty.set(map_end);
        state.next_horizon.set(pass.next_horizon);
        // Every group was swapped in, and each swap synced its segment before it returned.
        checkpoint::save(log, state).await;
    }
    Ok(stats)
}
