//! The one error type of the operator commands and the exit codes scripts can rely on.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the broker refused or failed the operation (the message names the Kafka error) |
//! | 2 | bad command line or input (also clap's own usage errors) |
//! | 3 | no broker reachable, or it stopped answering (connection refused, timeout) |
//! | 4 | what was named does not exist (topic, partition, group) |
//! | 5 | the broker does not support what was asked (an API or version it lacks) |

use std::fmt;

/// The table above as `sluice --help` prints it, after the commands.
pub const EXIT_CODES_HELP: &str = "\
Exit codes of the admin commands (topic, group, share-group, dlq, produce, consume, ...):
  0  done
  1  the broker refused or failed the operation (the message names the Kafka error)
  2  bad command line or input (also clap's own usage errors)
  3  no broker reachable, or it stopped answering (connection refused, timeout)
  4  what was named does not exist (topic, partition, group)
  5  the broker does not support what was asked (an API or version it lacks)";

use crate::kafka::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Usage,
    Unreachable,
    NotFound,
    Unsupported,
}

#[derive(Debug, Clone)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    /// The Kafka error, when the broker answered with one.
    pub code: Option<(i16, &'static str)>,
}

impl CliError {
    fn new(kind: Kind, message: impl Into<String>) -> CliError {
        CliError {
            kind,
            message: message.into(),
            code: None,
        }
    }
    pub fn other(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Failed, m)
    }
    pub fn usage(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Usage, m)
    }
    pub fn unreachable(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Unreachable, m)
    }
    pub fn not_found(m: impl Into<String>) -> CliError {
        CliError::new(Kind::NotFound, m)
    }
    pub fn unsupported(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Unsupported, m)
    }

    /// The error for a Kafka error code in an answer about `what`, or None for NONE (0).
    /// The message names the code (`UNKNOWN_TOPIC_OR_PARTITION (3)`), the broker's own
    /// message (or Kafka's default one) and, for the common cases, what to do.
    pub fn kafka_opt(code: i16, message: Option<&str>, what: &str) -> Option<CliError> {
        if code == 0 {
            return None;
        }
        let known = ErrorCode::from_code(code);
        let name = known.map_or("UNKNOWN_ERROR_CODE", |c| c.name());
        let detail = message
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .or_else(|| known.map(|c| c.default_message().to_string()))
            .unwrap_or_default();
        let mut text = format!("{what}: {name} ({code}): {detail}");
        if let Some(h) = known.and_then(hint) {
            text.push_str(&format!(" [{h}]"));
        }
        let kind = match known {
            Some(
                ErrorCode::UnknownTopicOrPartition
                | ErrorCode::GroupIdNotFound
                | ErrorCode::UnknownTopicId,
            ) => Kind::NotFound,
            Some(ErrorCode::UnsupportedVersion) => Kind::Unsupported,
            Some(
                ErrorCode::InvalidConfig
                | ErrorCode::InvalidPartitions
                | ErrorCode::InvalidTopicException
                | ErrorCode::InvalidReplicationFactor
                | ErrorCode::InvalidRequest,
            ) => Kind::Usage,
            _ => Kind::Failed,
        };
        Some(CliError {
            kind,
            message: text,
            code: Some((code, name)),
        })
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Unreachable => 3,
            Kind::NotFound => 4,
            Kind::Unsupported => 5,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.message,
            "kind": format!("{:?}", self.kind).to_lowercase(),
            "error_code": self.code.map(|c| c.0),
            "error_name": self.code.map(|c| c.1),
            "exit_code": self.exit_code(),
        })
    }
}

/// What to do about the errors an operator meets most.
fn hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UnknownTopicOrPartition => {
            "see `sluice topic list`; create it with `sluice topic create`"
        }
        ErrorCode::TopicAlreadyExists => {
            "it exists: `sluice topic describe` shows it; --if-not-exists makes this a no-op"
        }
        ErrorCode::GroupIdNotFound => "see `sluice group list` (or `sluice share-group list`)",
        ErrorCode::NonEmptyGroup => "the group has live members: stop its consumers first",
        ErrorCode::InvalidPartitions => "partitions can only be added, never removed",
        ErrorCode::InvalidConfig => "`sluice topic describe` lists the configs and their values",
        ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress => {
            "the broker is starting; retry"
        }
        ErrorCode::RequestTimedOut => "retry, or raise --timeout",
        ErrorCode::UnknownMemberId
        | ErrorCode::IllegalGeneration
        | ErrorCode::RebalanceInProgress => {
            "the group is active: stop its consumers before resetting"
        }
        ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::ClusterAuthorizationFailed => "the broker refuses this principal",
        ErrorCode::UnsupportedVersion => "the broker is too old for this command",
        _ => return None,
    })
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<String> for CliError {
    fn from(m: String) -> CliError {
        CliError::other(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_exit_code_with_its_meaning() {
        let kinds = [
            (Kind::Failed, "refused or failed"),
            (Kind::Usage, "bad command line"),
            (Kind::Unreachable, "no broker reachable"),
            (Kind::NotFound, "does not exist"),
            (Kind::Unsupported, "does not support"),
        ];
        for (kind, meaning) in kinds {
            let code = CliError::new(kind, "").exit_code();
            let line = EXIT_CODES_HELP
                .lines()
                .find(|l| l.starts_with(&format!("  {code}  ")))
                .unwrap_or_else(|| panic!("exit code {code} is not in the help"));
            assert!(line.contains(meaning), "{line}");
        }
    }
}
