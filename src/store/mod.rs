//! The broker's own durable state (not the record logs, which are `log/`'s).
//!
//! Offers two mechanisms, and only these two:
//! - [`atomic`]: small, rarely changed state as one rkyv file, replaced atomically
//!   (temp file, fdatasync, rename, directory fsync) and validated on load — the topic
//!   registry, the producer-id block, recovery checkpoints' neighbours, producer
//!   snapshots;
//! - [`journal`]: state that changes often (committed group offsets, transaction state,
//!   share-partition state) as an append-only log of checksummed rkyv records with group
//!   commit, compacted on roll.
//!
//! Knows nothing of Kafka or the network; errors name the file.

pub mod atomic;
pub mod journal;

pub use atomic::{load, save, StateError};
