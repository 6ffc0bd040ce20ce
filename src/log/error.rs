//! Errors of the storage engine, each mapped to the Kafka error code a client should see.

use std::fmt;

/// Why a log operation failed. `error_code()` is what goes into the Kafka response.
#[derive(Debug)]
pub enum LogError {
    /// Bad lengths, magic or CRC: CORRUPT_MESSAGE (2).
    CorruptMessage(String),
    /// Well-formed bytes with wrong content (counts, deltas, codecs): INVALID_RECORD (87).
    InvalidRecord(String),
    /// A batch bigger than `max.message.bytes`: MESSAGE_TOO_LARGE (10).
    MessageTooLarge { size: usize, max: usize },
    /// OFFSET_OUT_OF_RANGE (1).
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The bounded queue is full, or another topic policy refused: POLICY_VIOLATION (44).
    PolicyViolation(String),
    /// An I/O error: KAFKA_STORAGE_ERROR (56). The log is offline after a failed write.
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The log was closed or removed, or went offline after an earlier I/O error: KAFKA_STORAGE_ERROR (56).
    Offline(String),
}

/// Kafka error codes used here (see the Kafka protocol guide, "Error Codes").
pub mod code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const INVALID_RECORD: i16 = 87;
}

impl LogError {
    /// The Kafka error code for this error.
    pub fn error_code(&self) -> i16 {
        match self {
            LogError::CorruptMessage(_) => code::CORRUPT_MESSAGE,
            LogError::InvalidRecord(_) => code::INVALID_RECORD,
            LogError::MessageTooLarge { .. } => code::MESSAGE_TOO_LARGE,
            LogError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
            LogError::PolicyViolation(_) => code::POLICY_VIOLATION,
            LogError::Io { .. } | LogError::Offline(_) => code::KAFKA_STORAGE_ERROR,
        }
    }

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
