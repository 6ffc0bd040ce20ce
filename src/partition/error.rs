//! What a client is told when the log refuses or fails: each `LogError` maps to the
//! Kafka error code of its case (the log itself knows no Kafka codes).

use crate::kafka::{ErrorCode, KafkaError};
use crate::log::LogError;

/// The Kafka error code for a log error.
pub fn log_error_code(e: &LogError) -> ErrorCode {
    match e {
        LogError::CorruptMessage(_) => ErrorCode::CorruptMessage,
        LogError::InvalidRecord(_) => ErrorCode::InvalidRecord,
        LogError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::PolicyViolation(_) => ErrorCode::PolicyViolation,
        LogError::Io { .. } | LogError::Offline(_) => ErrorCode::KafkaStorageError,
    }
}

impl From<LogError> for KafkaError {
    fn from(e: LogError) -> Self {
        KafkaError::new(log_error_code(&e), e.to_string())
    }
}
