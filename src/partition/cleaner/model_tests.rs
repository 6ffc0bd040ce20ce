//! The cleaner against a model of Kafka's rules: seeded random sequences of keyed puts,
//! tombstones, gzip batches, committed and aborted transactions, cleaning passes at
//! advancing times (a map of a few keys, so dirty logs are cleaned over several passes),
//! restarts, and crashes at each step of the swap; after every step the records the log
//! serves are exactly the records the model keeps, offsets increase, and a fetch from
//! any offset (one compacted away included) starts at the next kept record.
//!
//! `cargo test --release --lib cleaner::model_tests`; `SLUICE_CLEANER_MODEL_SEEDS=N`
//! runs N seeds.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::cluster::Compression;
use crate::log::batch::{BatchBuilder, Record};
use crate::log::{CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};
use crate::partition::producer::state::{tests::allow_if_transactional, Check};
use crate::partition::Partition;
use crate::runtime::test_run as run;

const DELETE_RETENTION_MS: i64 = 100;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A record or marker as read back: (offset, key, value, is a marker).
type Served = (i64, Vec<u8>, Option<Vec<u8>>, bool);

/// One record or marker the log was given, and what the model says of it.
#[derive(Clone, Debug)]
struct Item {
    offset: i64,
    key: Vec<u8>,
    /// None: a tombstone.
    value: Option<Vec<u8>>,
    /// The transaction it belongs to (index into `Model::txns`).
    txn: Option<usize>,
    /// A transaction marker (its transaction is `txn`).
    marker: bool,
    /// The time after which it may go: set by the first pass that keeps it as removable.
    horizon: Option<i64>,
    kept: bool,
}

#[derive(Default)]
struct Model {
    items: Vec<Item>,
    /// Whether each transaction was aborted.
    txns: Vec<bool>,
}

impl Model {
    /// A pass to completion at `now` over `[0, end)` (Kafka's rules, record by record).
    fn clean(&mut self, now: i64, end: i64) {
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        for it in &self.items {
            let aborted = it.txn.is_some_and(|t| self.txns[t]);
            if it.offset < end && !it.marker && !aborted {
                latest.insert(it.key.clone(), it.offset);
            }
        }
        let txns = self.txns.clone();
        for it in self
            .items
            .iter_mut()
            .filter(|i| i.kept && !i.marker && i.offset < end)
        {
            if it.txn.is_some_and(|t| txns[t]) || latest[&it.key] > it.offset {
                it.kept = false;
            } else if it.value.is_none() {
                expire(it, now);
            }
        }
        let mut live: HashMap<usize, usize> = HashMap::new();
        for it in self.items.iter().filter(|i| i.kept && !i.marker) {
            if let Some(t) = it.txn {
                *live.entry(t).or_default() += 1;
            }
        }
        for it in self
            .items
            .iter_mut()
            .filter(|i| i.kept && i.marker && i.offset < end)
        {
            if !live.contains_key(&it.txn.unwrap_or(usize::MAX)) {
                expire(it, now);
            }
        }
    }

    /// A record the log was given at `offset`, kept until a pass says otherwise.
    fn put(&mut self, offset: i64, key: Vec<u8>, value: Option<Vec<u8>>, txn: Option<usize>) {
        self.items.push(Item {
            offset,
            key,
            value,
            txn,
            marker: false,
            horizon: None,
            kept: true,
        });
    }

    fn kept(&self) -> Vec<Served> {
        self.items
            .iter()
            .filter(|i| i.kept)
            .map(|i| (i.offset, i.key.clone(), i.value.clone(), i.marker))
            .collect()
    }
}

/// A removable tombstone or marker: its horizon is set by the first pass, it goes at
/// the first pass at or after the horizon.
fn expire(it: &mut Item, now: i64) {
    match it.horizon {
        None => it.horizon = Some(now + DELETE_RETENTION_MS),
        Some(h) if now >= h => it.kept = false,
        Some(_) => {}
    }
}

pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: None,
        retention_ms: None,
        flush: FlushPolicy::Never,
        index_interval_bytes: 256,
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: DELETE_RETENTION_MS as u64,
        ..LogConfig::default()
    }
}

/// Produces as the owner does (check, append with the transaction hook, complete).
pub(super) async fn produce(part: &Partition, records: &[u8]) -> i64 {
    allow_if_transactional(&mut part.producers.borrow_mut(), records);
    let check = part.producers.borrow_mut().check(records, 0).unwrap();
    let pb = match check {
        Check::Append(pb) => Some(pb),
        _ => None,
    };
    let hook = |base, _| {
        if let Some(pb) = pb.filter(|pb| pb.transactional) {
            part.producers.borrow_mut().begin_txn(&pb, base, 0);
        }
    };
    let info = part.log.append_with(records, hook).await.unwrap();
    if let Some(pb) = pb {
        part.producers
            .borrow_mut()
            .complete(&pb, info.base_offset, info.last_offset);
    }
    info.base_offset
}

/// Appends 1–4 random keyed records (some tombstones), maybe gzip, maybe in `txn`.
async fn put(part: &Partition, m: &mut Model, rng: &mut Rng, txn: Option<(usize, i64, &mut i32)>) {
    let n = 1 + rng.below(4) as usize;
    let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
        .map(|_| {
            let key = format!("k{}", rng.below(12)).into_bytes();
            let value = (rng.below(5) != 0).then(|| format!("v{}", rng.next()).into_bytes());
            (key, value)
        })
        .collect();
    let recs: Vec<Record<'_>> = items
        .iter()
        .map(|(k, v)| Record {
            key: Some(k),
            value: v.as_deref(),
            ..Default::default()
        })
        .collect();
    let mut b = BatchBuilder::new(1_000);
    let txn_index = txn.as_ref().map(|t| t.0);
    if let Some((_, pid, seq)) = txn {
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.base_sequence = *seq;
        b.attributes |= batch::TRANSACTIONAL_BIT;
        *seq += n as i32;
    }
    let mut bytes = Bytes::from(b.build(&recs));
    if rng.below(3) == 0 {
        let gz = crate::partition::compress::recompress(&bytes, Compression::Gzip { level: 1 });
        bytes = gz.unwrap().unwrap();
    }
    let base = produce(part, &bytes).await;
    for (i, (key, value)) in items.into_iter().enumerate() {
        m.put(base + i as i64, key, value, txn_index);
    }
}

/// A transaction of 1–2 batches (plain puts may come between), committed or aborted.
async fn transaction(
    part: &Partition,
    m: &mut Model,
    rng: &mut Rng,
    seqs: &mut BTreeMap<i64, i32>,
) {
    let pid = 100 + rng.below(3) as i64;
    let t = m.txns.len();
    let abort = rng.below(2) == 0;
    m.txns.push(abort);
    for _ in 0..1 + rng.below(2) {
        let seq = seqs.entry(pid).or_insert(0);
        put(part, m, rng, Some((t, pid, seq))).await;
        if rng.below(2) == 0 {
            put(part, m, rng, None).await;
        }
    }
    let offset = crate::partition::txn::write_marker(part, pid, 0, !abort, 0)
        .await
        .unwrap();
    m.items.push(Item {
        offset,
        key: Vec::new(),
        value: None,
        txn: Some(t),
        marker: true,
        horizon: None,
        kept: true,
    });
}

/// Every record and marker the log serves from its start: (offset, key, value, marker).
pub(super) async fn served(log: &PartitionLog) -> Vec<Served> {
    let mut out = Vec::new();
    let slice = log.read(log.log_start_offset(), 1 << 30).await.unwrap();
    let mut buf = Vec::new();
    slice.read_to_vec(&mut buf).await.unwrap();
    let mut bytes = Bytes::from(buf);
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    for r in sets.into_iter().flat_map(|s| s.records) {
        let key = if r.control {
            Vec::new()
        } else {
            r.key.map(|k| k.to_vec()).unwrap_or_default()
        };
        let value = if r.control {
            None
        } else {
            r.value.map(|v| v.to_vec())
        };
        out.push((r.offset, key, value, r.control));
    }
    out
}

/// A fetch from every offset starts at the batch holding the next kept item.
async fn check_reads(log: &PartitionLog, kept: &[Served], what: &str) {
    for o in log.log_start_offset()..log.high_watermark() {
        let slice = log.read(o, 1).await.unwrap();
        let mut buf = Vec::new();
        slice.read_to_vec(&mut buf).await.unwrap();
        let next = kept.iter().find(|k| k.0 >= o).map(|k| k.0);
        if buf.is_empty() {
            assert_eq!(next, None, "{what}: fetch at {o} found nothing");
            continue;
        }
        let base = batch::base_offset(&buf);
        let last = base + batch::last_offset_delta(&buf) as i64;
        assert!(
            last >= o,
            "{what}: fetch at {o} starts with batch {base}..={last}"
        );
        assert!(
            base <= o || next.is_none_or(|n| n >= base),
            "{what}: fetch at {o} starts at batch {base}, skipping {next:?}"
        );
    }
}

async fn check(log: &PartitionLog, m: &Model, what: &str) {
    let got = served(log).await;
    let offsets: Vec<i64> = got.iter().map(|g| g.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{what}: offsets increase"
    );
    assert_eq!(got, m.kept(), "{what}: served records are the model's");
    check_reads(log, &got, what).await;
}

/// The aborted index a read_committed fetch reports holds exactly the aborted
/// transactions whose ABORT marker is still in the log: one whose marker went would make
/// a client skip every later batch of its producer.
fn check_aborted_index(part: &Partition, m: &Model, what: &str) {
    let (start, end) = (part.log.log_start_offset(), part.log.high_watermark());
    let mut index: Vec<i64> = part
        .producers
        .borrow()
        .aborted_in(start, end)
        .iter()
        .map(|t| t.last_offset)
        .collect();
    index.sort_unstable();
    let markers: Vec<i64> = m
        .items
        .iter()
        .filter(|i| i.kept && i.marker && i.txn.is_some_and(|t| m.txns[t]))
        .map(|i| i.offset)
        .collect();
    assert_eq!(
        index, markers,
        "{what}: the aborted index lists the ABORT markers kept"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn log_bases(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().ok()?;
            n.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Rebuilds the crash states of the pass that turned `pre` into `post` and recovers
/// each: a `.cleaned` file left (the old log comes back), or a `.swap` with some of the
/// replaced files already gone (the cleaned log comes back). Returns how many it checked.
async fn crash_states(
    root: &Path,
    pre: &Path,
    post: &Path,
    before: &Model,
    after: &Model,
    rng: &mut Rng,
) -> usize {
    let mut states = 0;
    let (pre_bases, post_bases) = (log_bases(pre), log_bases(post));
    for (i, &a) in post_bases.iter().enumerate().take(post_bases.len() - 1) {
        let name = format!("{a:020}.log");
        let same = pre_bases.contains(&a)
            && std::fs::read(pre.join(&name)).unwrap() == std::fs::read(post.join(&name)).unwrap();
        if same {
            continue;
        }
        let n = post_bases[i + 1];
        let n_str = format!("{n:020}");
        for swapped in [false, true] {
            let dir = root.join(format!("crash-{}-{a}-{swapped}", rng.next()));
            copy_dir(pre, &dir);
            let target = if swapped {
                for &b in pre_bases.iter().filter(|b| (a..n).contains(*b)) {
                    if rng.below(2) == 0 {
                        let _ = std::fs::remove_file(dir.join(format!("{b:020}.log")));
                        let _ = std::fs::remove_file(dir.join(format!("{b:020}.index")));
                    }
                }
                dir.join(format!("{a:020}.{n_str}.swap"))
            } else {
                dir.join(format!("{a:020}.log.cleaned"))
            };
            std::fs::copy(post.join(&name), target).unwrap();
            let log = PartitionLog::open(&dir, config()).await.unwrap();
            let expect = if swapped { after } else { before };
            // Only this group swapped: items outside [a, n) are as before the pass.
            let mut m = Model {
                items: before.items.clone(),
                txns: before.txns.clone(),
            };
            for (x, y) in m.items.iter_mut().zip(&expect.items) {
                if (a..n).contains(&x.offset) {
                    x.kept = y.kept;
                }
            }
            check(&log, &m, &format!("crash at {a}..{n} swapped={swapped}")).await;
            log.close().await.unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            states += 1;
        }
    }
    states
}

/// What a seed exercised: records removed, tombstones and markers removed after their
/// horizon, crash states recovered.
#[derive(Default, Debug)]
struct Seen {
    removed: usize,
    expired: usize,
    crashes: usize,
}

async fn run_seed(seed: u64, steps: usize) -> Seen {
    let mut seen = Seen::default();
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("changelog-0");
    let mut part = Partition::open(&dir, config()).await.unwrap();
    let mut m = Model::default();
    let mut seqs = BTreeMap::new();
    let mut now = 10_000;
    let map_bytes = MAP_ENTRY_BYTES * (3 + rng.below(20) as usize);
    let cfg = CleanerConfig {
        map_bytes,
        io_bytes_per_sec: 0,
    };
    for step in 0..steps {
        let what = format!("seed {seed} step {step}");
        match rng.below(10) {
            0..=4 => put(&part, &mut m, &mut rng, None).await,
            5 | 6 => transaction(&part, &mut m, &mut rng, &mut seqs).await,
            7 if rng.below(4) == 0 => {
                part.close("changelog", 0).await;
                part = Partition::open(&dir, config()).await.unwrap();
                check(&part.log, &m, &format!("{what} after a restart")).await;
                check_aborted_index(&part, &m, &format!("{what} after a restart"));
            }
            _ => {
                now += rng.below(2 * DELETE_RETENTION_MS as u64) as i64;
                let before = Model {
                    items: m.items.clone(),
                    txns: m.txns.clone(),
                };
                let pre = tmp.path().join(format!("pre-{step}"));
                let crash = rng.below(3) == 0;
                if crash {
                    part.log.flush().await.unwrap();
                    copy_dir(&dir, &pre);
                }
                let end = part
                    .log
                    .sealed_segments()
                    .last()
                    .map_or(0, |s| s.next_offset);
                // Passes at `now` until the dirty part is all mapped (a small map takes several).
                for _ in 0..1000 {
                    let c = part.cleanable(now);
                    if c.is_none_or(|c| c.dirty_bytes == 0) {
                        break;
                    }
                    part.clean(cfg, now).await.unwrap();
                }
                part.clean(cfg, now).await.unwrap();
                m.clean(now, end);
                check(
                    &part.log,
                    &m,
                    &format!("{what} after cleaning at {now} to {end}"),
                )
                .await;
                check_aborted_index(&part, &m, &format!("{what} after cleaning"));
                if crash {
                    part.log.flush().await.unwrap();
                    let post = tmp.path().join(format!("post-{step}"));
                    copy_dir(&dir, &post);
                    seen.crashes +=
                        crash_states(tmp.path(), &pre, &post, &before, &m, &mut rng).await;
                    std::fs::remove_dir_all(&pre).unwrap();
                    std::fs::remove_dir_all(&post).unwrap();
                }
            }
        }
    }
    seen.removed = m.items.iter().filter(|i| !i.kept).count();
    seen.expired = m
        .items
        .iter()
        .filter(|i| !i.kept && (i.marker || i.value.is_none()) && i.horizon.is_some())
        .count();
    seen
}

#[test]
fn the_cleaner_keeps_exactly_what_kafkas_rules_keep() {
    let seeds: u64 = std::env::var("SLUICE_CLEANER_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    run(move || async move {
        let mut all = Seen::default();
        for seed in 0..seeds {
            let s = run_seed(seed, 150).await;
            all.removed += s.removed;
            all.expired += s.expired;
            all.crashes += s.crashes;
        }
        // The seeds reach every rule: superseded records, horizons passed, crashes.
        assert!(
            all.removed > 0 && all.expired > 0 && all.crashes > 0,
            "{all:?}"
        );
        eprintln!("cleaner model: {seeds} seeds, {all:?}");
    });
}

/// Appends one record of `key` and `value` as its own batch, and to the model.
async fn put_one(part: &Partition, m: &mut Model, key: &[u8], value: Vec<u8>) {
    let rec = Record {
        key: Some(key),
        value: Some(&value),
        ..Default::default()
    };
    let bytes = BatchBuilder::new(1_000).build(&[rec]);
    let offset = produce(part, &bytes).await;
    m.put(offset, key.to_vec(), Some(value), None);
}

#[test]
fn batches_larger_than_one_read_are_cleaned_whole() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("changelog-0");
        let part = Partition::open(&dir, config()).await.unwrap();
        let mut m = Model::default();
        // Values of several of the reader's 128 KiB reads, patterned so that a piece
        // read twice or out of place would show.
        let big = |n: usize, seed: u8| (0..n).map(|i| (i % 251) as u8 ^ seed).collect::<Vec<u8>>();
        put_one(&part, &mut m, b"a", big(400 << 10, 1)).await;
        put_one(&part, &mut m, b"b", b"small".to_vec()).await;
        put_one(&part, &mut m, b"a", big(300 << 10, 2)).await;
        put_one(&part, &mut m, b"c", big(700 << 10, 3)).await;
        put_one(&part, &mut m, b"b", b"small again".to_vec()).await;
        put_one(&part, &mut m, b"d", b"rolls the last big one out".to_vec()).await;
        let end = part.log.sealed_segments().last().unwrap().next_offset;
        let cfg = CleanerConfig {
            map_bytes: MAP_ENTRY_BYTES * 16,
            io_bytes_per_sec: 0,
        };
        part.clean(cfg, 20_000).await.unwrap();
        m.clean(20_000, end);
        assert!(m.items.iter().any(|i| !i.kept), "the pass removed nothing");
        check(&part.log, &m, "after cleaning").await;
    });
}
