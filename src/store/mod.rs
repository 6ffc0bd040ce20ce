//! The broker's own durable state (not the record logs, which are `log/`'s). Knows nothing
//! of Kafka or the network; errors name the file.

pub mod journal;
