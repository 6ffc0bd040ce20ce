//! [`KafkaError`]: what goes wrong for one part of a request, as the client will see it.

use std::fmt;

use super::ErrorCode;

/// The result of an operation whose failure is answered to the client as a Kafka error.
pub type Result<T> = std::result::Result<T, KafkaError>;

/// An error for one part of a request: the Kafka code that goes on the wire and a message for
/// the client (and the log) that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: ErrorCode,
    pub message: String,
}

impl KafkaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The number that goes in the response's `error_code` field.
    pub fn wire_code(&self) -> i16 {
        self.code.code()
    }
}

/// An error with Kafka's default message for its code.
impl From<ErrorCode> for KafkaError {
    fn from(code: ErrorCode) -> KafkaError {
        KafkaError::new(code, code.default_message())
    }
}

impl fmt::Display for KafkaError {
    /// `UNKNOWN_TOPIC_OR_PARTITION (3): topic orders has 4 partitions, not 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for KafkaError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_for_a_missing_partition_carries_code_3_and_the_reason() {
        let error = KafkaError::new(
            ErrorCode::UnknownTopicOrPartition,
            "topic orders has 4 partitions, not 7",
        );
        assert_eq!(error.code(), ErrorCode::UnknownTopicOrPartition);
        assert_eq!(error.wire_code(), 3);
        assert_eq!(error.message(), "topic orders has 4 partitions, not 7");
        assert_eq!(
            error.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION (3): topic orders has 4 partitions, not 7"
        );
    }

    #[test]
    fn a_bare_code_becomes_an_error_with_kafkas_default_message() {
        let error = KafkaError::from(ErrorCode::KafkaStorageError);
        assert_eq!(error.wire_code(), 56);
        assert_eq!(
            error.message,
            "Disk error when trying to access log file on the disk."
        );
    }

    #[test]
    fn it_travels_through_question_mark_as_a_std_error() {
        fn fails() -> Result<()> {
            Err(ErrorCode::InvalidRecord.into())
        }
        fn boxed() -> std::result::Result<(), Box<dyn std::error::Error>> {
            fails()?;
            Ok(())
        }
        let error = boxed().unwrap_err();
        assert!(error.to_string().starts_with("INVALID_RECORD (87): "));
    }
}
