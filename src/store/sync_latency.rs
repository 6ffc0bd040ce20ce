//! How long the group-commit fdatasyncs of the journals took on this thread (the shard
//! whose journals they are: committed offsets, transaction state, share-partition state,
//! share group configs). Kept here, like `log::sync_latency`, so that `store/` needs no
//! metrics types; the metrics endpoint copies it on scrape and merges the copies.

use std::cell::RefCell;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Microseconds, 1 µs .. 60 s, 3 significant digits (~20 KiB per shard).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

thread_local! {
    static SYNCS: RefCell<Histogram<u64>> = RefCell::new(new_histogram());
}

/// Records one fdatasync that took `took`.
pub fn record(took: Duration) {
    let us = (took.as_micros() as u64).clamp(1, 60_000_000);
    SYNCS.with(|h| h.borrow_mut().saturating_record(us));
}

/// A copy of this thread's fdatasync latencies (µs).
pub fn snapshot() -> Histogram<u64> {
    SYNCS.with(|h| h.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_this_threads_histogram_only() {
        std::thread::spawn(|| {
            record(Duration::from_micros(250));
            record(Duration::from_millis(3));
            let h = snapshot();
            assert_eq!(h.len(), 2);
            assert_eq!(h.max(), h.highest_equivalent(3000));
        })
        .join()
        .unwrap();
        std::thread::spawn(|| assert_eq!(snapshot().len(), 0))
            .join()
            .unwrap();
    }
}
