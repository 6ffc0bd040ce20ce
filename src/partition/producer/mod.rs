//! A partition's producers: per-producer idempotence (the last batches' sequences) and
//! transaction state (the open transaction's first offset, the aborted index) in
//! `state`, saved as a snapshot and replayed from the log after it by `recovery`.

pub mod recovery;
pub mod state;
