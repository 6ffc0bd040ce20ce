//! How long this shard's fdatasyncs took, per kind of file: segment data (group commits,
//! interval flushes, seals, recovery; `log/`) and the journals' group commits (committed
//! offsets, transaction and share state; `store/`). Kept per thread (the shard that owns
//! the files), here below both parts, so neither needs metrics types; the metrics
//! endpoint copies them on scrape (on each shard) and merges the copies.

use std::cell::RefCell;
use std::time::Duration;

use hdrhistogram::Histogram;

/// What was synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    Segment = 0,
    Journal = 1,
}

/// Microseconds, 1 µs .. 60 s, 3 significant digits (~20 KiB per kind and shard).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

thread_local! {
    static SYNCS: RefCell<[Histogram<u64>; 2]> = RefCell::new([new_histogram(), new_histogram()]);
}

/// Records one fdatasync of `what` that took `took`.
pub fn record(what: Synced, took: Duration) {
    let us = (took.as_micros() as u64).clamp(1, 60_000_000);
    SYNCS.with(|h| h.borrow_mut()[what as usize].saturating_record(us));
}

/// A copy of this thread's fdatasync latencies of `what` (µs).
pub fn snapshot(what: Synced) -> Histogram<u64> {
    SYNCS.with(|h| h.borrow()[what as usize].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_this_threads_histogram_of_their_kind_only() {
        std::thread::spawn(|| {
            record(Synced::Segment, Duration::from_micros(250));
            record(Synced::Segment, Duration::from_millis(3));
            record(Synced::Journal, Duration::from_millis(1));
            let h = snapshot(Synced::Segment);
            assert_eq!(h.len(), 2);
            assert_eq!(h.max(), h.highest_equivalent(3000));
            assert_eq!(snapshot(Synced::Journal).len(), 1);
        })
        .join()
        .unwrap();
        std::thread::spawn(|| assert_eq!(snapshot(Synced::Segment).len(), 0))
            .join()
            .unwrap();
    }
}
