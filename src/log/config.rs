//! Per-log configuration: Kafka's topic-level settings that the storage engine obeys.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// When appended bytes are made durable with `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlushPolicy {
    /// Group commit: one `fdatasync` covers every append completed while the
    /// previous one ran; `wait_durable` resolves after a sync that covers the offset.
    Always,
    /// A background timer syncs the log when it is dirty.
    Interval(Duration),
    /// Only rolls and clean closes sync (the page cache decides the rest).
    Never,
}

impl FromStr for FlushPolicy {
    type Err = String;

    /// `"always"`, `"never"` or `"interval:<ms>"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "always" => Ok(FlushPolicy::Always),
            "never" => Ok(FlushPolicy::Never),
            other => {
                let ms = other.strip_prefix("interval:").ok_or_else(|| {
                    format!(
                        "unknown flush policy {other:?}: expected always, never or interval:<ms>"
                    )
                })?;
                let ms: u64 = ms
                    .trim()
                    .parse()
                    .map_err(|e| format!("bad flush interval {ms:?}: {e}"))?;
                if ms == 0 {
                    return Err("flush interval must be at least 1 ms".to_string());
                }
                Ok(FlushPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::Never => f.write_str("never"),
            FlushPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// Kafka's `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimestampType {
    CreateTime,
    /// The broker stamps each batch's maxTimestamp with the append time (and re-computes the CRC).
    LogAppendTime,
}

/// Kafka's `cleanup.policy`: a list of `delete` (retention removes old segments) and
/// `compact` (the cleaner keeps the last record of every key). Kafka's default is delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;

    /// A comma-separated list of `delete` and `compact` (either order, at least one).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                other => {
                    return Err(format!(
                        "cleanup.policy must be a list of delete and compact, got '{other}'"
                    ))
                }
            }
        }
        if !p.delete && !p.compact {
            return Err("cleanup.policy must name delete, compact or both".into());
        }
        Ok(p)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => f.write_str("compact,delete"),
            (true, false) => f.write_str("compact"),
            _ => f.write_str("delete"),
        }
    }
}

/// Kafka's topic configs that matter to one partition's log, with Kafka's names and defaults.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would grow past this. Default 1 GiB.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when it is older than this. Default 7 days.
    pub segment_ms: Option<u64>,
    /// `retention.ms`: delete sealed segments whose max timestamp is older. None = forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest sealed segments while the log is bigger. None = unlimited.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest record batch accepted. Default 1_048_588.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// Durability policy (Sluice's `flush`).
    pub flush: FlushPolicy,
    /// Bounded-queue mode: refuse appends (POLICY_VIOLATION) instead of growing past this many
    /// bytes between the log start offset and the end.
    pub max_queue_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes between two sparse index entries. Default 4096.
    pub index_interval_bytes: usize,
    /// `cleanup.policy`: retention applies only with `delete`; the cleaner only with `compact`.
    pub cleanup: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: the cleaner takes a partition once this share of its
    /// cleanable bytes was written since the last cleaning. Default 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long. Default 0.
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes its partition
    /// cleanable whatever its dirty ratio. Default Long.MAX_VALUE.
    pub max_compaction_lag_ms: u64,
    /// `delete.retention.ms`: how long a tombstone (and an empty transaction marker) is
    /// kept after the cleaning that first found it removable. Default 1 day.
    pub delete_retention_ms: u64,
}

/// Kafka's defaults: 1 GiB segments, 7-day segment.ms and retention.ms.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::Interval(Duration::from_millis(1000)),
            max_queue_bytes: None,
            index_interval_bytes: 4096,
            cleanup: CleanupPolicy::default(),
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            delete_retention_ms: DAY_MS,
        }
    }
}

impl LogConfig {
    /// Segment positions are u32 in the index, so a segment never exceeds u32::MAX bytes.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(4096, u32::MAX as u64)
    }

    pub(crate) fn effective_index_interval(&self) -> usize {
        self.index_interval_bytes.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_round_trips() {
        for s in ["always", "never", "interval:1000", "interval:5"] {
            let p: FlushPolicy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(
            "interval:250".parse::<FlushPolicy>().unwrap(),
            FlushPolicy::Interval(Duration::from_millis(250))
        );
        assert!("sometimes".parse::<FlushPolicy>().is_err());
        assert!("interval:".parse::<FlushPolicy>().is_err());
        assert!("interval:0".parse::<FlushPolicy>().is_err());
    }

    #[test]
    fn cleanup_policy_is_a_list_of_delete_and_compact() {
        for (s, delete, compact, shown) in [
            ("delete", true, false, "delete"),
            ("compact", false, true, "compact"),
            ("compact,delete", true, true, "compact,delete"),
            ("delete, compact", true, true, "compact,delete"),
        ] {
            let p: CleanupPolicy = s.parse().unwrap();
            assert_eq!((p.delete, p.compact), (delete, compact), "{s}");
            assert_eq!(p.to_string(), shown);
        }
        for bad in ["", ",", "remove", "compact,forever"] {
            assert!(bad.parse::<CleanupPolicy>().is_err(), "{bad}");
        }
    }
}
