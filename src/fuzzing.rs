//! Fuzz entry points (issue 14 item 4): what the broker does with bytes it did not write —
//! request frames off the socket, record batches inside a Produce, and every durable state
//! file it loads at startup. Each function takes arbitrary bytes and must return without a
//! panic, an abort or a hang; what it finds wrong it answers with an error, as the broker
//! does. `fuzz/fuzz_targets/*.rs` call them under libFuzzer (`cargo fuzz run <target>`);
//! the unit test below replays every input kept in `fuzz/corpus/<target>/`, so a crash
//! once found stays a regression test in `cargo test`.
//!
//! Compiled only for tests and fuzzing (`--cfg fuzzing`, set by cargo fuzz): none of it is
//! in the broker binary.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;

use crate::cluster::topic_config::{Compression, TopicConfigDefaults};
use crate::cluster::{ClientQuotas, QuotaRecord, Registry, RegistryRecord};
use crate::config::BrokerConfig;
use crate::log::{self, batch, checkpoint};
use crate::log::{LogConfig, PartitionLog};
use crate::protocol::{peek_start, precheck};
use crate::store::atomic as state;

#[cfg(test)]
mod mutate;

/// The largest message a Produce may carry (Kafka's `message.max.bytes` default).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A request frame without its length prefix, as `net::connection` cuts it: the checks
/// made before parsing, the header, the body of whichever API the header names, and for
/// a Produce every record set through the validation, recompression and record decoding
/// a partition's owner applies.
pub fn request(data: &[u8]) {
    let Ok(start) = peek_start(data) else { return };
    let Ok(None) = precheck(&start) else { return };
    let Ok(key) = ApiKey::try_from(start.api_key) else {
        return;
    };
    let mut frame = Bytes::copy_from_slice(data);
    if RequestHeader::decode(&mut frame, key.request_header_version(start.version)).is_err() {
        return;
    }
    if key == ApiKey::Produce {
        if let Ok(req) = ProduceRequest::decode(&mut frame, start.version) {
            for topic in req.topic_data {
                for p in topic.partition_data {
                    if let Some(records) = p.records {
                        record_set(&records);
                    }
                }
            }
        }
        return;
    }
    let _ = RequestKind::decode(key, &mut frame, start.version);
}

/// A Produce record set: what the partition's owner checks before anything is written.
pub fn record_batch(data: &[u8]) {
    record_set(&Bytes::copy_from_slice(data));
}

fn record_set(records: &Bytes) {
    let Ok(batches) = batch::validate_batches(records, MAX_MESSAGE_BYTES) else {
        return;
    };
    assert_eq!(batches.iter().map(|b| b.len).sum::<usize>(), records.len());
    // A topic's compression.type: a valid set recompresses into a set that validates again.
    let targets = [
        Compression::Gzip { level: 1 },
        Compression::Snappy,
        Compression::Lz4 { level: 1 },
        Compression::Zstd { level: 1 },
        Compression::Uncompressed,
    ];
    for codec in targets {
        if let Ok(Some(out)) = crate::partition::compress::recompress(records, codec) {
            // A compressed batch is validated by its header only (the broker never
            // decompresses to append): uncompressed, the records inside are checked too
            // and may be refused (INVALID_RECORD to the producer). In another codec the
            // header is kept, so the set stays valid.
            match batch::validate_batches(&out, usize::MAX) {
                Ok(again) => assert_eq!(again.len(), batches.len()),
                Err(e) => assert!(
                    codec == Compression::Uncompressed,
                    "recompressed to {codec:?}, the set is invalid: {e}"
                ),
            }
        }
    }
    let mut bytes = records.clone();
    while bytes.len() > batch::LOG_OVERHEAD {
        if RecordBatchDecoder::decode(&mut bytes).is_err() {
            break;
        }
    }
}

/// The durable state file a selector byte names, made of the bytes after it. With the
/// second byte's low bit set, checksums are recomputed, so the fuzzer reaches what the
/// loaders do with well-framed but wrong contents (a bug that wrote them, a hand edit).
pub fn state_file(data: &[u8]) {
    let [which, flags, body @ ..] = data else {
        return;
    };
    let fix = flags & 1 == 1;
    let tmp = TempDir::new();
    let dir = tmp.path();
    match which % 8 {
        0 => registry(dir, &atomic_file(body, fix)),
        1 => quotas(dir, &atomic_file(body, fix)),
        2 => atomic_load::<crate::cluster::producer_ids::IdBlockRecord>(dir, body, fix),
        3 => atomic_load::<crate::coordinator::txn::store::TxnFile>(dir, body, fix),
        4 => journal(dir, "groups", body, fix, |d, s| {
            crate::coordinator::group::recover(d, s).map(drop)
        }),
        5 => journal(dir, "txn", body, fix, |d, s| {
            crate::coordinator::txn::store::recover(d, s).map(drop)
        }),
        6 => journal(dir, "share", body, fix, |d, s| {
            crate::partition::share::store::recover(d, s, |_, p| p.unsigned_abs() as usize % s)
                .map(drop)
        }),
        _ => journal(dir, "share-groups", body, fix, |d, s| {
            crate::coordinator::share::configs::recover(d, s).map(drop)
        }),
    }
}

fn registry(dir: &Path, file: &[u8]) {
    let path = dir.join("registry");
    std::fs::write(&path, file).expect("write");
    if let Ok(Some(rec)) = state::load::<RegistryRecord>(&path) {
        let defaults = TopicConfigDefaults::from_broker(&BrokerConfig::default());
        let _ = Registry::from_record(&rec, &defaults, 2);
    }
}

fn quotas(dir: &Path, file: &[u8]) {
    let path = dir.join("quotas");
    std::fs::write(&path, file).expect("write");
    if let Ok(Some(rec)) = state::load::<QuotaRecord>(&path) {
        ClientQuotas::from_record(&rec);
    }
    if let Ok(Some(rec)) = state::load::<crate::cluster::LegacyQuotaRecord>(&path) {
        ClientQuotas::from_record(&rec.into());
    }
}

fn atomic_load<T>(dir: &Path, body: &[u8], fix: bool)
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let path = dir.join("state");
    std::fs::write(&path, atomic_file(body, fix)).expect("write");
    let _ = state::load::<T>(&path);
}

/// `body` as a `store::atomic` file: as it is, or as the payload of a valid header.
fn atomic_file(body: &[u8], fix: bool) -> Vec<u8> {
    if fix {
        state::frame_for_tests(body)
    } else {
        body.to_vec()
    }
}

/// `body` split in two shard files of a journal under `<dir>/<name>`, then the broker's
/// recovery of it under one and under two shards (the second rewrites the layout).
fn journal(
    dir: &Path,
    name: &str,
    body: &[u8],
    fix: bool,
    recover: impl Fn(&Path, usize) -> Result<(), String>,
) {
    let jdir = dir.join(name);
    std::fs::create_dir_all(&jdir).expect("mkdir");
    let cut = body.first().map_or(0, |&b| b as usize).min(body.len());
    for (shard, part) in [&body[..cut], &body[cut..]].into_iter().enumerate() {
        let bytes = if fix {
            crate::store::journal::refit_for_tests(part)
        } else {
            part.to_vec()
        };
        std::fs::write(crate::store::journal::shard_path(&jdir, shard), bytes).expect("write");
    }
    for shards in [1, 2] {
        if recover(dir, shards).is_err() {
            return;
        }
    }
}

/// A partition directory made of length-prefixed parts — segment 0's log, offset index
/// and time index, the recovery checkpoint, the producer state snapshot, the cleaner's
/// checkpoint — opened as the broker opens it at startup: recovery, then the producer
/// state and the cleaner's checkpoint, then a read of all.
pub fn partition_dir(data: &[u8]) {
    let parts = split(data);
    let tmp = TempDir::new();
    let dir = tmp.path().join("p-0");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let paths = [
        log::log_path(&dir, 0),
        log::index_path(&dir, 0),
        log::time_index_path(&dir, 0),
        checkpoint::path(&dir),
        crate::partition::producer::state::snapshot_path(&dir),
        crate::partition::cleaner::checkpoint::path(&dir),
    ];
    for (path, part) in paths.iter().zip(&parts) {
        std::fs::write(path, part).expect("write");
    }
    // What a valid checkpoint covers is trusted, not re-validated (it was synced and
    // validated when written): only without one must every batch served be valid.
    let trusted = parts
        .get(3)
        .is_some_and(|c| checkpoint::Checkpoint::decode(c).is_some());
    on_one_executor(move || async move {
        let Ok(log) = PartitionLog::open(&dir, LogConfig::default()).await else {
            return;
        };
        let _ = crate::partition::producer::recovery::load(&log).await;
        let _ = crate::partition::cleaner::checkpoint::load(&log);
        let mut at = log.log_start_offset();
        while at < log.high_watermark() {
            let Ok(slice) = log.read(at, 1 << 16).await else {
                break;
            };
            let mut out = Vec::new();
            if slice.read_to_vec(&mut out).await.is_err() || out.is_empty() {
                break;
            }
            let found = match batch::validate_batches(&out, usize::MAX) {
                Ok(found) => found,
                Err(_) if trusted => break,
                Err(e) => panic!("recovery served an invalid batch: {e}"),
            };
            let last = found.last().expect("one batch");
            let base = batch::base_offset(&out[last.offset_in_blob..]);
            at = base + last.last_offset_delta as i64 + 1;
        }
        let _ = log.close().await;
    });
    drop(tmp);
}

/// A job for `on_one_executor`, and where its outcome goes.
type Job = (
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send>,
    std::sync::mpsc::Sender<std::thread::Result<()>>,
);

/// Run `f`'s future on one glommio executor that lives as long as the process, as a
/// broker's shard does, and raise its panic here. A file dropped without `close` is
/// closed by its executor later; with an executor per input, ended at once, each such
/// file and an eventfd stayed open, and the fuzzer ran out of descriptors after about
/// 10,000 inputs.
fn on_one_executor<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    use futures_lite::FutureExt;
    use std::sync::mpsc::{self, TryRecvError};
    use std::sync::{Mutex, OnceLock};
    static JOBS: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            crate::runtime::test_run(move || async move {
                loop {
                    match rx.try_recv() {
                        Ok((job, done)) => {
                            let outcome = std::panic::AssertUnwindSafe(job()).catch_unwind().await;
                            let _ = done.send(outcome);
                        }
                        Err(TryRecvError::Empty) => {
                            glommio::timer::sleep(std::time::Duration::from_micros(200)).await
                        }
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            })
        });
        Mutex::new(tx)
    });
    let (done, outcome) = mpsc::channel();
    let job: Job = (Box::new(move || Box::pin(f())), done);
    let sent = jobs.lock().map(|jobs| jobs.send(job).is_ok());
    assert!(matches!(sent, Ok(true)), "the fuzz executor has stopped");
    if let Err(panic) = outcome.recv().expect("the fuzz executor answers") {
        std::panic::resume_unwind(panic);
    }
}

/// A fresh directory under the temp dir (on tmpfs when TMPDIR says so), removed on drop.
/// (tempfile is a dev-dependency; the fuzz build sees only the normal ones.)
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parts of `data`, each a u16 little-endian length then that many bytes (the last one
/// takes what is left when its length runs past the end).
fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while let [a, b, rest @ ..] = data {
        let len = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
        parts.push(&rest[..len]);
        data = &rest[len..];
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input kept under `fuzz/corpus/<target>/` (seeds recorded from real clients and
    /// whatever the fuzzer added or found) goes through its target again.
    /// Each target, and how many mutated inputs the short run gives it (about half a
    /// minute for the four in the release build on a 2-core machine).
    type Target = (&'static str, fn(&[u8]), usize);
    const TARGETS: [Target; 4] = [
        ("request", request, 2_000_000),
        ("record_batch", record_batch, 2_000_000),
        ("state_file", state_file, 6_000),
        ("partition_dir", partition_dir, 2_000),
    ];

    #[test]
    fn every_kept_fuzz_input_runs_clean() {
        for (name, target, _) in TARGETS {
            let inputs = kept_inputs(name);
            assert!(!inputs.is_empty(), "no kept inputs for {name}");
            inputs.iter().for_each(|input| target(input));
        }
    }

    /// The short fuzz run (`mutate`): each target on mutations of its kept inputs, a new
    /// seed each run (printed; `SLUICE_FUZZ_SEED` replays one).
    #[test]
    fn every_target_survives_mutations_of_its_kept_inputs() {
        let seed = mutate::seed();
        for (name, target, runs) in TARGETS {
            let started = std::time::Instant::now();
            mutate::run(name, target, &kept_inputs(name), runs, seed);
            eprintln!(
                "fuzz {name}: {runs} mutated inputs, seed {seed}, {:?}",
                started.elapsed()
            );
        }
    }

    fn kept_inputs(name: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name);
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
            .collect()
    }

    /// A harness that leaks descriptors runs the fuzzer out of them (EMFILE after ~10,000
    /// inputs, with an executor per input: 126 left open per pass over the kept
    /// partition_dir inputs). Counted over two more passes, after the first has set up
    /// what lives for the process; other tests running meanwhile open and close their
    /// own, hence the margin.
    #[test]
    fn the_partition_dir_harness_leaks_no_descriptors() {
        let inputs = kept_inputs("partition_dir");
        let pass = || inputs.iter().for_each(|input| partition_dir(input));
        pass();
        let before = open_fds();
        pass();
        pass();
        let leaked = open_fds().saturating_sub(before);
        assert!(
            leaked < 60,
            "{leaked} descriptors more after two passes over {} inputs",
            inputs.len()
        );
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .count()
    }
}
