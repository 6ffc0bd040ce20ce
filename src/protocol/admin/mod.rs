//! Topic administration, one file each: CreateTopics, DeleteTopics, CreatePartitions,
//! DeleteRecords, the ACLs (Create/Describe/DeleteAcls, `acls.rs`), and what tools ask of a cluster's placement: DescribeLogDirs,
//! DescribeTopicPartitions, ElectLeaders, List/AlterPartitionReassignments. Registry changes run on the controller (shard 0) through
//! `cluster::Cluster::change`; DeleteRecords on the partitions' owners.

mod acls;
mod alter_partition_reassignments;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_log_dirs;
mod describe_topic_partitions;
mod elect_leaders;
mod list_partition_reassignments;

use crate::cluster::{Change, NewTopic};
use crate::cluster::{TopicConfigDefaults, TopicMeta};
use crate::kafka::{ErrorCode, KafkaError};
use crate::partition::messages::DeleteRecords;
use crate::protocol::authorized::{Authz, ALTER, CREATE, DELETE, DESCRIBE};
use crate::protocol::context::Context;
use crate::protocol::metadata::NODE_ID;
use crate::protocol::route::owner_gone;
pub use acls::{create_acls, delete_acls, describe_acls};
pub use alter_partition_reassignments::alter_partition_reassignments;
pub use create_partitions::create_partitions;
pub use create_topics::create_topics;
pub use delete_records::delete_records;
pub use delete_topics::delete_topics;
pub use describe_log_dirs::describe_log_dirs;
pub use describe_topic_partitions::describe_topic_partitions;
pub use elect_leaders::elect_leaders;
use futures_util::future::join_all;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
pub use list_partition_reassignments::list_partition_reassignments;
use std::collections::BTreeMap;
use std::sync::Arc;

/// DescribeConfigs config sources.
pub const SOURCE_TOPIC: i8 = 1;

pub const SOURCE_DEFAULT: i8 = 5;

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}
