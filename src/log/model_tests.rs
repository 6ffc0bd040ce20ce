//! Storage operations fuzzed against a model (issue 14 item 2): seeded random sequences of
//! append, roll (small segments), read, flush, retention, DeleteRecords, crash with the
//! unsynced tail of the active segment cut at a random byte (truncate-on-recovery), and
//! injected write errors, on a real `PartitionLog` in a temp dir, checked after every step
//! against an in-memory model of what must be visible.
//!
//! `cargo test --release log::model_tests` runs a short form; `SLUICE_LOG_MODEL_OPS=1000000`
//! runs seeds until that many operations are done and prints the count.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

use super::tests::run;
use super::*;

/// splitmix64: a seeded generator, so a failing seed replays exactly.
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

/// What must be visible: every acknowledged batch as stored, the log start offset, and
/// the offset below which everything is known synced.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, Vec<u8>)>,
    start: i64,
    durable: i64,
}

impl Model {
    fn next(&self) -> i64 {
        self.batches.last().map_or(self.start.max(0), |(b, bytes)| {
            b + batch::last_offset_delta(bytes) as i64 + 1
        })
    }
    /// Index of the batch holding `offset`.
    fn batch_at(&self, offset: i64) -> Option<usize> {
        let i = self.batches.partition_point(|(b, _)| *b <= offset);
        (i > 0).then(|| i - 1).filter(|&i| {
            let (b, bytes) = &self.batches[i];
            offset <= b + batch::last_offset_delta(bytes) as i64
        })
    }
}

fn config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes: 4096 + rng.below(8192),
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        flush: FlushPolicy::Never,
        index_interval_bytes: 64 + rng.below(512) as usize,
        ..LogConfig::default()
    }
}

fn check(cond: bool, seed: u64, step: usize, what: &str) {
    assert!(cond, "seed {seed} step {step}: {what}");
}

async fn read_bytes(log: &PartitionLog, offset: i64, max: usize) -> Result<Vec<u8>, LogError> {
    let slice = log.read(offset, max).await?;
    let mut out = Vec::new();
    slice.read_to_vec(&mut out).await?;
    Ok(out)
}

/// A read must return whole batches of the model from the one holding `offset`, within
/// `max` bytes unless it is the first (KIP-74).
fn expect_read(m: &Model, offset: i64, max: usize, got: &[u8]) -> Result<(), String> {
    if offset == m.next() {
        return if got.is_empty() {
            Ok(())
        } else {
            Err("data past the end".into())
        };
    }
    let Some(mut i) = m.batch_at(offset) else {
        return Err(format!("offset {offset} is in no batch of the model"));
    };
    let mut at = 0;
    while at < got.len() {
        let want = &m.batches.get(i).ok_or("more bytes than the model has")?.1;
        if got.get(at..at + want.len()) != Some(&want[..]) {
            return Err(format!("batch {i} differs at byte {at} of the read"));
        }
        at += want.len();
        i += 1;
    }
    let batches = i - m.batch_at(offset).unwrap_or(i);
    if got.is_empty() || (at > max && batches > 1) {
        return Err(format!(
            "read of {} bytes ({batches} batches) with max {max}",
            got.len()
        ));
    }
    Ok(())
}

/// Appends one batch of 1-4 records; the model takes it only if acknowledged.
async fn op_append(log: &PartitionLog, m: &mut Model, rng: &mut Rng) -> Result<(), LogError> {
    let n = 1 + rng.below(4) as usize;
    let size = rng.below(700) as usize;
    let seed = rng.next();
    let vals: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            (0..size)
                .map(|j| (seed as usize + i * 31 + j) as u8)
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    let mut b = batch::build_batch(1_000 + rng.below(1_000) as i64, &refs);
    let segs_before = log.segment_count();
    let info = log.append(&b).await?;
    batch::set_base_offset(&mut b, info.base_offset);
    batch::set_partition_leader_epoch(&mut b, 0);
    assert_eq!(info.base_offset, m.next(), "offsets continue the model");
    if log.segment_count() > segs_before {
        // A roll seals (syncs) everything before the new segment.
        m.durable = m.durable.max(info.base_offset);
    }
    m.batches.push((info.base_offset, b));
    Ok(())
}

/// The active segment's file and the bytes of it the model knows synced.
fn active_file(dir: &Path, m: &Model) -> (std::path::PathBuf, u64) {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let path = logs.pop().expect("an active segment");
    let base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let synced = m
        .batches
        .iter()
        .filter(|(b, _)| *b >= base && *b < m.durable)
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    (path, synced)
}

/// A crash: the log is dropped unclosed and the active segment loses a random part of
/// what was not synced (cut at any byte, or kept whole), then recovery runs.
async fn op_crash(
    dir: &Path,
    log: Rc<PartitionLog>,
    m: &mut Model,
    rng: &mut Rng,
    cfg: LogConfig,
) -> Rc<PartitionLog> {
    drop(log);
    let (path, synced) = active_file(dir, m);
    let len = std::fs::metadata(&path).unwrap().len();
    if rng.below(2) == 0 && len > synced {
        let cut = synced + rng.below(len - synced + 1);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(cut).unwrap();
    }
    let log = PartitionLog::open(dir, cfg)
        .await
        .expect("recovery opens the log");
    let hwm = log.high_watermark();
    assert!(
        hwm >= m.durable,
        "recovery lost synced data: hwm {hwm} < durable {}",
        m.durable
    );
    assert!(
        hwm <= m.next(),
        "recovery invented offsets: hwm {hwm} > {}",
        m.next()
    );
    m.batches.retain(|(b, _)| *b < hwm);
    assert_eq!(m.next().max(m.start), hwm, "recovery cut inside a batch");
    assert_eq!(
        log.log_start_offset(),
        m.start,
        "the log start survives a crash"
    );
    m.durable = hwm;
    log
}

/// From now on every write to the active segment fails (its descriptor now names
/// /dev/full); the next operation is a crash.
fn inject_write_error(log: &PartitionLog) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let fd = log.active().file.as_raw_fd();
    // SAFETY: both descriptors are open; `fd` stays open (naming /dev/full) and is closed
    // once, when the segment drops its file.
    assert!(unsafe { libc::dup2(full.as_raw_fd(), fd) } >= 0);
}

/// Fails the run when a step makes no progress for 20 s: a hang becomes a failure that
/// names the seed, the step and the operation (its roll), not a test that never ends.
async fn watchdog(seed: u64, progress: Rc<std::cell::Cell<(usize, u64)>>) {
    let mut last = (usize::MAX, 0);
    loop {
        glommio::timer::sleep(std::time::Duration::from_secs(20)).await;
        let now = progress.get();
        assert!(
            now != last,
            "seed {seed} step {}: operation (roll {}) hung for 20 s",
            now.0,
            now.1
        );
        last = now;
    }
}

async fn run_seed(seed: u64, ops: usize) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let mut rng = Rng(seed);
    let cfg = config(&mut rng);
    let mut log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
    let mut m = Model::default();
    let mut broken = false;
    let progress = Rc::new(std::cell::Cell::new((0, 0)));
    let watch = glommio::spawn_local(watchdog(seed, progress.clone())).detach();
    for step in 0..ops {
        let roll = rng.below(100);
        progress.set((step, roll));
        if broken || roll < 4 {
            log = op_crash(&dir, log, &mut m, &mut rng, cfg.clone()).await;
            broken = false;
        } else if roll < 55 {
            if let Err(e) = op_append(&log, &mut m, &mut rng).await {
                panic!("seed {seed} step {step}: append failed: {e}");
            }
        } else if roll < 80 {
            let lo = log.log_start_offset();
            let off = lo + rng.below((m.next() - lo + 1) as u64) as i64;
            let max = 1 + rng.below(3000) as usize;
            let got = read_bytes(&log, off, max).await;
            let res = got
                .map_err(|e| e.to_string())
                .and_then(|g| expect_read(&m, off, max, &g));
            check(
                res.is_ok(),
                seed,
                step,
                &format!("read {off} max {max}: {res:?}"),
            );
        } else if roll < 86 {
            log.flush().await.unwrap();
            m.durable = m.next();
        } else if roll < 91 {
            let lo = log.log_start_offset();
            let to = lo + rng.below((m.next() - lo + 1) as u64) as i64;
            let start = log.delete_records(to).await.unwrap();
            check(start == to.max(lo), seed, step, "DeleteRecords start");
            m.start = start;
            m.durable = m.next();
        } else if roll < 96 {
            let mut c = cfg.clone();
            c.retention_bytes = Some(rng.below(20_000));
            log.set_config(c);
            let r = log.enforce_retention(i64::MAX / 2).await.unwrap();
            log.set_config(cfg.clone());
            let s = r.log_start_offset;
            check(
                s >= m.start && s <= m.next(),
                seed,
                step,
                "retention start in range",
            );
            let on_batch = m.batch_at(s).is_some_and(|i| m.batches[i].0 == s);
            check(
                s == m.start || s == m.next() || on_batch,
                seed,
                step,
                &format!("retention start {s} (model start {})", m.start),
            );
            m.start = s;
        } else {
            inject_write_error(&log);
            let n = m.batches.len();
            let r = op_append(&log, &mut m, &mut rng).await;
            check(
                r.is_err() && m.batches.len() == n,
                seed,
                step,
                "an append to a failing disk is refused",
            );
            broken = true;
        }
        check(
            log.log_start_offset() == m.start,
            seed,
            step,
            "log start offset",
        );
        if !broken {
            check(
                log.high_watermark() == m.next(),
                seed,
                step,
                "high watermark",
            );
        }
    }
    watch.cancel();
    ops
}

/// Runs seeds from `first` until `total` operations are done; returns (seeds, ops).
fn fuzz(first: u64, total: usize, per_seed: usize) -> (u64, usize) {
    let mut done = 0;
    let mut seed = first;
    while done < total {
        let n = per_seed.min(total - done);
        let s = seed;
        let ops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let o = ops.clone();
        run(move || async move {
            o.store(run_seed(s, n).await, std::sync::atomic::Ordering::Relaxed);
        });
        done += ops.load(std::sync::atomic::Ordering::Relaxed);
        seed += 1;
    }
    (seed - first, done)
}

#[test]
fn storage_operations_match_the_model() {
    let total: usize = std::env::var("SLUICE_LOG_MODEL_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let first: u64 = std::env::var("SLUICE_LOG_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let started = std::time::Instant::now();
    let (seeds, ops) = fuzz(first, total, 2_000);
    println!(
        "log model: {ops} operations over {seeds} seeds from seed {first}, 0 divergences, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
