//! Newtypes for ids and units that are easy to mix up: an offset and a producer id are both
//! `i64`, a producer epoch and an error code both `i16`, a partition index and a shard index
//! both small integers. Each type says which one a number is; the inner field stays public so
//! the wire codecs can read and write it without ceremony.

use std::fmt;
use std::sync::Arc;

/// Declares a newtype over an integer, ordered and hashed like the integer, displayed as it.
macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_newtype! {
    /// The position of a record in a partition's log.
    Offset(i64)
}

id_newtype! {
    /// The producer id of an idempotent or transactional producer (KIP-98).
    ProducerId(i64)
}

id_newtype! {
    /// The epoch of a producer id; a higher epoch fences the producers with lower ones (KIP-98).
    ProducerEpoch(i16)
}

id_newtype! {
    /// The index of a shard: one core, its executor, and the partitions it owns.
    ShardId(usize)
}

id_newtype! {
    /// The index of a partition within its topic.
    PartitionId(i32)
}

impl Offset {
    /// No offset: Kafka's `-1` for an offset that is unknown or absent (`UNKNOWN_OFFSET`).
    pub const NONE: Offset = Offset(-1);
}

impl ProducerId {
    /// No producer id: a batch from a producer that is neither idempotent nor transactional
    /// (`RecordBatch.NO_PRODUCER_ID`).
    pub const NONE: ProducerId = ProducerId(-1);
}

impl ProducerEpoch {
    /// No producer epoch (`RecordBatch.NO_PRODUCER_EPOCH`).
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

/// A partition of a topic, by name; displayed as Kafka does, `orders-3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_display_as_their_number() {
        assert_eq!(Offset(42).to_string(), "42");
        assert_eq!(ProducerId(7000).to_string(), "7000");
        assert_eq!(ProducerEpoch(3).to_string(), "3");
        assert_eq!(ShardId(2).to_string(), "2");
        assert_eq!(PartitionId(5).to_string(), "5");
        assert_eq!(format!("{:>4}", Offset(7)), "   7");
    }

    #[test]
    fn sentinels_are_kafkas_minus_one() {
        assert_eq!(Offset::NONE.0, -1);
        assert_eq!(ProducerId::NONE.0, -1);
        assert_eq!(ProducerEpoch::NONE.0, -1);
        assert!(Offset::NONE < Offset(0));
    }

    #[test]
    fn topic_partitions_sort_by_topic_then_partition_and_display_as_kafka_does() {
        let set: BTreeSet<TopicPartition> = [
            TopicPartition::new("orders", 10),
            TopicPartition::new("audit", 3),
            TopicPartition::new("orders", 2),
        ]
        .into_iter()
        .collect();
        let shown: Vec<String> = set.iter().map(|tp| tp.to_string()).collect();
        assert_eq!(shown, ["audit-3", "orders-2", "orders-10"]);
        assert_eq!(
            TopicPartition::new("orders", 2),
            TopicPartition::new(String::from("orders"), 2)
        );
    }
}
