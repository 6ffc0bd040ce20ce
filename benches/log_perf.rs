//! Perf scenario driver for `perf/log_append.sh`: appends fixed-size record batches to a
//! real partition log and prints `key=value` lines.
//!
//! cargo bench --bench log_perf -- --mode buffered|always [--appenders N] [--batch-bytes B]
//!     [--total-bytes T] [--dir D]
//!
//! - buffered: flush=never, `appenders` tasks append back to back; the time is the time of
//!   the appends (bytes in the page cache), like fio's buffered sequential write.
//! - always: flush=always, each task does append + wait_durable (acks=all), so a batch counts
//!   only once an fdatasync covers it; group commit shares syncs between the tasks.

use std::rc::Rc;
use std::time::Instant;

use glommio::{LocalExecutorBuilder, Placement};
use sluice::log::{batch, FlushPolicy, LogConfig, PartitionLog};

struct Args {
    mode: String,
    appenders: usize,
    batch_bytes: usize,
    total_bytes: u64,
    dir: std::path::PathBuf,
}

fn parse() -> Args {
    let mut a = Args {
        mode: "buffered".into(),
        appenders: 1,
        batch_bytes: 1 << 20,
        total_bytes: 1 << 30,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--mode" => a.mode = v(),
            "--appenders" => a.appenders = v().parse().expect("--appenders N"),
            "--batch-bytes" => a.batch_bytes = v().parse().expect("--batch-bytes B"),
            "--total-bytes" => a.total_bytes = v().parse().expect("--total-bytes T"),
            "--dir" => a.dir = v().into(),
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One uncompressed batch of `bytes` bytes (one record; exact unless a varint width flips).
fn batch_of_exactly(bytes: usize) -> Vec<u8> {
    let mut value_len = bytes.saturating_sub(100);
    let mut b = Vec::new();
    for _ in 0..4 {
        b = batch::build_batch(1_700_000_000_000, &[&vec![0x5au8; value_len]]);
        if b.len() == bytes {
            break;
        }
        value_len = (value_len as i64 + bytes as i64 - b.len() as i64).max(0) as usize;
    }
    b
}

fn main() {
    let args = parse();
    let always = match args.mode.as_str() {
        "buffered" => false,
        "always" => true,
        m => panic!("unknown mode {m}"),
    };
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .name("log_perf")
        .spawn(move || async move {
            let tmp = tempfile::tempdir_in(&args.dir).expect("tempdir");
            let config = LogConfig {
                flush: if always {
                    FlushPolicy::Always
                } else {
                    FlushPolicy::Never
                },
                retention_ms: None,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(tmp.path(), config).await.expect("open");
            let b = Rc::new(batch_of_exactly(args.batch_bytes));
            let per_task = args.total_bytes / b.len() as u64 / args.appenders as u64;
            let start = Instant::now();
            let tasks: Vec<_> = (0..args.appenders)
                .map(|_| {
                    let (log, b) = (log.clone(), b.clone());
                    glommio::spawn_local(async move {
                        for _ in 0..per_task {
                            let info = log.append(&b).await.expect("append");
                            if always {
                                log.wait_durable(info.last_offset).await.expect("durable");
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            let secs = start.elapsed().as_secs_f64();
            let bytes = per_task * args.appenders as u64 * b.len() as u64;
            println!("mode={}", args.mode);
            println!("appenders={}", args.appenders);
            println!("batch_bytes={}", b.len());
            println!("total_bytes={bytes}");
            println!("seconds={secs:.3}");
            println!("bytes_per_s={:.0}", bytes as f64 / secs);
            println!("mib_per_s={:.1}", bytes as f64 / secs / (1u64 << 20) as f64);
            println!("fdatasyncs={}", log.sync_count());
            log.close().await.expect("close");
        })
        .expect("executor");
    handle.join().expect("run");
}
