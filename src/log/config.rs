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
}
