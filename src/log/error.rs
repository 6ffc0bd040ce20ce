//! Errors of the storage engine. The log knows no Kafka codes: `partition::error` maps
//! each case to the code a client should see.

use std::fmt;

/// Why a log operation failed.
#[derive(Debug)]
pub enum LogError {
    /// Bad lengths, magic or CRC: the client sees CORRUPT_MESSAGE.
    CorruptMessage(String),
    /// Well-formed bytes with wrong content (counts, deltas, codecs): INVALID_RECORD.
    InvalidRecord(String),
    /// A batch bigger than `max.message.bytes`: MESSAGE_TOO_LARGE.
    MessageTooLarge { size: usize, max: usize },
    /// OFFSET_OUT_OF_RANGE (1).
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The bounded queue is full, or another topic policy refused: POLICY_VIOLATION.
    PolicyViolation(String),
    /// An I/O error: KAFKA_STORAGE_ERROR. The log is offline after a failed write.
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The log was closed or removed, or went offline after an earlier I/O error: KAFKA_STORAGE_ERROR.
    Offline(String),
}

impl LogError {
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
        source: impl Into<std::io::Error>,
    ) -> Self {
        LogError::Io {
            op,
            path: path.display().to_string(),
            source: source.into(),
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::CorruptMessage(m) => write!(f, "corrupt record batch: {m}"),
            LogError::InvalidRecord(m) => write!(f, "invalid record batch: {m}"),
            LogError::MessageTooLarge { size, max } => {
                write!(
                    f,
                    "record batch of {size} bytes exceeds max.message.bytes {max}"
                )
            }
            LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            } => write!(
                f,
                "offset {offset} out of range [{log_start_offset}, {high_watermark}]"
            ),
            LogError::PolicyViolation(m) => write!(f, "policy violation: {m}"),
            LogError::Io { op, path, source } => write!(f, "{op} {path}: {source}"),
            LogError::Offline(m) => write!(f, "log offline: {m}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
