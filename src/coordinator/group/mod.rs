//! Group coordinator: consumer group membership (the classic JoinGroup/SyncGroup
//! protocol and KIP-848's ConsumerGroupHeartbeat) and durable committed offsets.
//!
//! Every group has one owner shard, `owner_shard(group id)` (a stable hash, so every
//! shard computes the same owner); only the owner touches the group. `protocol/` sends
//! each group request there as a message of `messages` and turns the results below into
//! Kafka responses. This module knows nothing about Kafka request types or the network;
//! it reaches topics only through the registry snapshot it is given.
//!
//! - `classic`: the Empty → PreparingRebalance → CompletingRebalance → Stable machine.
//! - `consumer`: KIP-848 groups with server-side assignors and reconciliation.
//! - `offsets`: committed offsets, made durable by `store::journal`.

pub mod classic;
pub mod consumer;
pub mod messages;
pub mod offsets;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use tracing::{error, info};
use uuid::Uuid;

use crate::cluster::Registry;
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::runtime::{now_ms, Signal};
use classic::{ClassicGroup, JoinRequest, JoinResult, SyncRequest, SyncResult};
use consumer::{ConsumerGroup, TopicInfo, Topics};
pub use offsets::Recovered;
use offsets::{OffsetRecord, OffsetStore};

/// How often sessions, join phases and revocations are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// The owner shard of a group (the same hash as transactional ids).
pub use super::owner_shard;

/// Read the group logs of every shard and split the groups by their owner under the
/// current shard count. Blocking; runs before the shards start.
pub fn recover(data_dir: &std::path::Path, shards: usize) -> Result<Vec<Recovered>, String> {
    offsets::recover(data_dir, shards, |g| owner_shard(g, shards).0).map_err(|e| e.to_string())
}

pub enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group: String,
    pub member_id: String,
    pub generation_or_epoch: i32,
    pub instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// Per topic, per partition error codes.
pub type TopicCodes = Vec<(String, Vec<(i32, ErrorCode)>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: ErrorCode,
}

pub type FetchedTopics = Vec<(String, Vec<FetchedOffset>)>;

#[derive(Debug, Clone, Default)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct Described {
    pub error: ErrorCode,
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct Listed {
    pub group: String,
    pub protocol_type: String,
    pub state: String,
    /// "classic" or "consumer" (KIP-848 ListGroups v5).
    pub group_type: String,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerMemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub regex: Option<String>,
    /// (topic id, topic name, partitions)
    pub assignment: Vec<(Uuid, String, Vec<i32>)>,
    pub target: Vec<(Uuid, String, Vec<i32>)>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerDescribed {
    pub error: ErrorCode,
    pub group: String,
    pub state: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberView>,
}

/// Where the coordinator reads the topics from: the shard's current registry snapshot.
pub type TopicSource = Rc<dyn Fn() -> std::sync::Arc<Registry>>;

/// The groups one shard coordinates.
pub struct Coordinator {
    shard: ShardId,
    shards: usize,
    topics: TopicSource,
    groups: RefCell<HashMap<String, Group>>,
    store: RefCell<Option<Rc<OffsetStore>>>,
    loaded: Cell<bool>,
}

fn load_err() -> KafkaError {
    KafkaError::new(
        ErrorCode::CoordinatorLoadInProgress,
        "the group coordinator is still loading",
    )
}

/// Subscribed topic names → (topic id, partition count), for the topics that exist.
pub fn topic_info(reg: &Registry, names: &BTreeSet<String>) -> TopicInfo {
    names
        .iter()
        .filter_map(|n| {
            reg.topic(n)
                .map(|t| (n.clone(), (t.id, t.partition_count())))
        })
        .collect()
}

/// The topics of a registry snapshot, as consumer groups subscribe to them.
struct RegistryTopics<'a>(&'a Registry);

impl Topics for RegistryTopics<'_> {
    fn info(&self, names: &BTreeSet<String>) -> TopicInfo {
        topic_info(self.0, names)
    }
    fn names(&self) -> Vec<&str> {
        self.0.topics.keys().map(|n| &**n).collect()
    }
}

impl Coordinator {
    /// The coordinator of shard `shard` of `shards`, reading topics from `topics`.
    pub fn new(shard: ShardId, shards: usize, topics: TopicSource) -> Coordinator {
        Coordinator {
            shard,
            shards,
            topics,
            groups: RefCell::new(HashMap::new()),
            store: RefCell::new(None),
            loaded: Cell::new(false),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.get()
    }

    /// Whether this shard coordinates `group`. Requests are always sent to the owner, so
    /// this holds while the shard count is fixed; the answer stays correct if not.
    pub fn owns(&self, group: &str) -> bool {
        owner_shard(group, self.shards) == self.shard
    }

    /// The registry snapshot the shard routes with now.
    pub fn registry(&self) -> std::sync::Arc<Registry> {
        (self.topics)()
    }

    /// Open this shard's offsets log from what `recover` found. Until this is done,
    /// every group request is answered with COORDINATOR_LOAD_IN_PROGRESS.
    pub async fn load(
        &self,
        data_dir: &std::path::Path,
        recovered: Recovered,
    ) -> Result<(), String> {
        let groups = recovered.state.len();
        let shard = self.shard.0;
        let store = OffsetStore::open(data_dir, shard, recovered, offsets::DEFAULT_ROLL_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        *self.store.borrow_mut() = Some(Rc::new(store));
        self.loaded.set(true);
        info!(shard, groups, "group coordinator loaded");
        Ok(())
    }

    fn store(&self) -> Result<Rc<OffsetStore>, KafkaError> {
        self.store.borrow().clone().ok_or_else(load_err)
    }

    fn classic<T>(
        &self,
        group: &str,
        create: bool,
        f: impl FnOnce(&mut ClassicGroup) -> T,
    ) -> Result<T, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let mut groups = self.groups.borrow_mut();
        if let Some(Group::Consumer(g)) = groups.get(group) {
            if !g.members.is_empty() {
                return Err(ErrorCode::InconsistentGroupProtocol);
            }
            groups.remove(group);
        }
        if create && !groups.contains_key(group) {
            groups.insert(group.to_string(), Group::Classic(ClassicGroup::new(group)));
        }
        match groups.get_mut(group) {
            Some(Group::Classic(g)) => Ok(f(g)),
            _ => Err(ErrorCode::UnknownMemberId),
        }
    }

    // --- the classic protocol ---

    pub fn join(&self, group: &str, r: JoinRequest) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member = r.member_id.clone();
        if group.is_empty() {
            let _ = tx.send(JoinResult::error(ErrorCode::InvalidGroupId, &member));
            return rx;
        }
        let tx = Rc::new(RefCell::new(Some(tx)));
        let inner = tx.clone();
        let r = self.classic(group, true, move |g| {
            if let Some(tx) = inner.borrow_mut().take() {
                g.join(r, Instant::now(), tx)
            }
        });
        if let Err(code) = r {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(JoinResult::error(code, &member));
            }
        }
        rx
    }

    pub fn sync(&self, group: &str, r: SyncRequest) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let tx = Rc::new(RefCell::new(Some(tx)));
        let inner = tx.clone();
        let r = self.classic(group, false, move |g| {
            if let Some(tx) = inner.borrow_mut().take() {
                g.sync(r, Instant::now(), tx)
            }
        });
        if let Err(code) = r {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(SyncResult::error(code));
            }
        }
        rx
    }

    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        instance_id: Option<&str>,
    ) -> ErrorCode {
        self.classic(group, false, |g| {
            g.heartbeat(member_id, generation, instance_id, Instant::now())
        })
        .unwrap_or_else(|c| c)
    }

    /// LeaveGroup: a group-level error, or one code per member.
    pub fn leave(
        &self,
        group: &str,
        who: &[(String, Option<String>)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.classic(group, false, |g| g.leave(who, Instant::now()))
    }

    // --- offsets ---

    pub(crate) fn validate_commit(&self, r: &CommitRequest) -> Result<(), ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        if r.group.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        match groups.get_mut(&r.group) {
            Some(Group::Classic(g)) => g.validate_commit(
                &r.member_id,
                r.generation_or_epoch,
                r.instance_id.as_deref(),
                now,
            ),
            Some(Group::Consumer(g)) => g.validate_commit(&r.member_id, r.generation_or_epoch),
            // No group: Kafka creates a simple group for such a commit.
            None if r.generation_or_epoch < 0 => Ok(()),
            None => Err(ErrorCode::UnknownMemberId),
        }
    }

    /// OffsetCommit: validate, write durably, then answer.
    pub async fn commit(&self, reg: &Registry, r: CommitRequest) -> Result<TopicCodes, ErrorCode> {
        self.validate_commit(&r)?;
        self.commit_unchecked(reg, r).await
    }

    /// Write offsets durably without checking the member: the offsets of a committed
    /// transaction, whose TxnOffsetCommit was checked when it arrived.
    pub async fn commit_unchecked(
        &self,
        reg: &Registry,
        r: CommitRequest,
    ) -> Result<TopicCodes, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let store = self.store().map_err(|e| e.code)?;
        let mut records = Vec::new();
        let mut codes: TopicCodes = Vec::with_capacity(r.topics.len());
        let commit_ms = now_ms();
        for (topic, parts) in &r.topics {
            let meta = reg.topic(topic);
            let mut pc = Vec::with_capacity(parts.len());
            for p in parts {
                let exists =
                    meta.is_some_and(|m| p.partition >= 0 && p.partition < m.partition_count());
                let md = p.metadata.clone().unwrap_or_default();
                let code = if !exists {
                    ErrorCode::UnknownTopicOrPartition
                } else if md.len() > offsets::MAX_METADATA_BYTES {
                    ErrorCode::OffsetMetadataTooLarge
                } else {
                    records.push(OffsetRecord::Commit {
                        seq: store.next_seq(),
                        group: r.group.clone(),
                        topic: topic.clone(),
                        partition: p.partition,
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: md,
                        commit_ms,
                    });
                    ErrorCode::None
                };
                pc.push((p.partition, code));
            }
            codes.push((topic.clone(), pc));
        }
        if !records.is_empty() {
            if let Err(e) = store.append(records).await {
                error!(group = %r.group, "committing offsets failed: {e}");
                for (_, pc) in codes.iter_mut() {
                    for (_, c) in pc.iter_mut() {
                        if *c == ErrorCode::None {
                            *c = ErrorCode::KafkaStorageError;
                        }
                    }
                }
            }
        }
        Ok(codes)
    }

    /// OffsetFetch of one group. `member`: KIP-848 member id and epoch (v9+), checked
    /// when the group is a consumer group. `topics` None means every committed offset.
    pub fn fetch(
        &self,
        group: &str,
        member: Option<(&str, i32)>,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedTopics, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        if let (Some((id, epoch)), Some(Group::Consumer(g))) =
            (member, self.groups.borrow().get(group))
        {
            g.validate_member_epoch(id, epoch)?;
        }
        let store = self.store().map_err(|e| e.code)?;
        let committed = store.group(group).unwrap_or_default();
        let found = |t: &str, p: i32| match committed.get(&(t.to_string(), p)) {
            Some(c) => FetchedOffset {
                partition: p,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: Some(c.metadata.clone()),
                error: ErrorCode::None,
            },
            None => FetchedOffset {
                partition: p,
                offset: -1,
                leader_epoch: -1,
                metadata: Some(String::new()),
                error: ErrorCode::None,
            },
        };
        Ok(match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let v = ps.into_iter().map(|p| found(&t, p)).collect();
                    (t, v)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
                for (t, p) in committed.keys() {
                    by_topic.entry(t.clone()).or_default().push(found(t, *p));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// OffsetDelete: remove committed offsets of partitions no member subscribes to.
    pub async fn delete_offsets(
        &self,
        group: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<TopicCodes, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let store = self.store().map_err(|e| e.code)?;
        let subscribed: BTreeSet<String> = match self.groups.borrow().get(group) {
            Some(Group::Classic(g)) if !g.members.is_empty() => match g.subscribed_topics() {
                Some(s) => s,
                None => return Err(ErrorCode::NonEmptyGroup),
            },
            Some(Group::Consumer(g)) => g.subscribed_topics(),
            _ => BTreeSet::new(),
        };
        let known = store.has_group(group) || self.groups.borrow().contains_key(group);
        if !known {
            return Err(ErrorCode::GroupIdNotFound);
        }
        let mut records = Vec::new();
        let mut codes = Vec::new();
        for (t, ps) in topics {
            let mut pc = Vec::new();
            for p in ps {
                if subscribed.contains(&t) {
                    pc.push((p, ErrorCode::GroupSubscribedToTopic));
                    continue;
                }
                records.push(OffsetRecord::Delete {
                    seq: store.next_seq(),
                    group: group.to_string(),
                    topic: t.clone(),
                    partition: p,
                });
                pc.push((p, ErrorCode::None));
            }
            codes.push((t, pc));
        }
        if !records.is_empty() && store.append(records).await.is_err() {
            return Err(ErrorCode::KafkaStorageError);
        }
        Ok(codes)
    }

    /// DeleteGroups of one group: only an empty group can go.
    pub async fn delete_group(&self, group: &str) -> ErrorCode {
        if !self.loaded.get() {
            return ErrorCode::CoordinatorLoadInProgress;
        }
        let Ok(store) = self.store() else {
            return ErrorCode::CoordinatorLoadInProgress;
        };
        {
            let groups = self.groups.borrow();
            match groups.get(group) {
                Some(Group::Classic(g)) if !g.is_empty() => return ErrorCode::NonEmptyGroup,
                Some(Group::Consumer(g)) if !g.members.is_empty() => {
                    return ErrorCode::NonEmptyGroup
                }
                Some(_) => {}
                None if !store.has_group(group) => return ErrorCode::GroupIdNotFound,
                None => {}
            }
        }
        if let Some(Group::Classic(g)) = self.groups.borrow_mut().get_mut(group) {
            g.mark_dead();
        }
        let rec = OffsetRecord::DeleteGroup {
            seq: store.next_seq(),
            group: group.to_string(),
        };
        let code = match store.append(vec![rec]).await {
            Ok(()) => ErrorCode::None,
            Err(e) => {
                error!(%group, "deleting the group's offsets failed: {e}");
                ErrorCode::KafkaStorageError
            }
        };
        self.groups.borrow_mut().remove(group);
        code
    }

    /// Topics were deleted (or re-created under a new id): remove their committed offsets
    /// from every group this shard coordinates, durably, as Kafka does when a topic goes
    /// (`GroupCoordinator.onPartitionsDeleted`). Without this a group would resume a
    /// re-created topic at the old topic's offsets. A no-op until the groups are loaded.
    pub async fn forget_topics(&self, gone: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let Ok(store) = self.store() else {
            return Ok(());
        };
        let records: Vec<OffsetRecord> = {
            let offsets = store.offsets();
            let mut out = Vec::new();
            for (group, committed) in offsets.iter() {
                for (topic, partition) in committed.keys().filter(|(t, _)| gone(t)) {
                    out.push((group.clone(), topic.clone(), *partition));
                }
            }
            out.into_iter()
                .map(|(group, topic, partition)| OffsetRecord::Delete {
                    seq: store.next_seq(),
                    group,
                    topic,
                    partition,
                })
                .collect()
        };
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        store.append(records).await.map_err(|e| e.to_string())?;
        info!(
            shard = self.shard.0,
            offsets = n,
            "removed the committed offsets of deleted topics"
        );
        Ok(())
    }

    // --- describe and list ---

    pub fn describe(&self, group: &str) -> Described {
        let mut d = Described {
            group: group.to_string(),
            ..Default::default()
        };
        if !self.loaded.get() {
            d.error = ErrorCode::CoordinatorLoadInProgress;
            return d;
        }
        match self.groups.borrow().get(group) {
            Some(Group::Classic(g)) => {
                d.state = g.state.name().to_string();
                d.protocol_type = g.protocol_type.clone().unwrap_or_default();
                d.protocol = g.protocol.clone().unwrap_or_default();
                d.members = g.describe_members();
            }
            Some(Group::Consumer(g)) => {
                d.state = g.state_name().to_string();
                d.protocol_type = "consumer".into();
                d.members = g
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        ..Default::default()
                    })
                    .collect();
            }
            None => {
                let known = self
                    .store
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| s.has_group(group));
                // Kafka describes an unknown group as Dead, and one with only
                // committed offsets as Empty.
                d.state = if known { "Empty" } else { "Dead" }.into();
            }
        }
        d
    }

    pub fn list(&self) -> Result<Vec<Listed>, ErrorCode> {
        if !self.loaded.get() {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let mut out: BTreeMap<String, Listed> = BTreeMap::new();
        if let Some(store) = self.store.borrow().as_ref() {
            for g in store.offsets().keys() {
                out.insert(
                    g.clone(),
                    Listed {
                        group: g.clone(),
                        protocol_type: "consumer".into(),
                        state: "Empty".into(),
                        group_type: "classic".into(),
                    },
                );
            }
        }
        for (id, g) in self.groups.borrow().iter() {
            let l = match g {
                Group::Classic(c) => {
                    if c.state == classic::ClassicState::Dead {
                        continue;
                    }
                    Listed {
                        group: id.clone(),
                        protocol_type: c.protocol_type.clone().unwrap_or_else(|| "consumer".into()),
                        state: c.state.name().into(),
                        group_type: "classic".into(),
                    }
                }
                Group::Consumer(c) => Listed {
                    group: id.clone(),
                    protocol_type: "consumer".into(),
                    state: c.state_name().into(),
                    group_type: "consumer".into(),
                },
            };
            out.insert(id.clone(), l);
        }
        Ok(out.into_values().collect())
    }

    // --- KIP-848 ---

    pub fn consumer_heartbeat(
        &self,
        reg: &Registry,
        group: &str,
        r: consumer::HeartbeatRequest,
    ) -> Result<consumer::HeartbeatResult, KafkaError> {
        if !self.loaded.get() {
            return Err(load_err());
        }
        if group.is_empty() {
            return Err(KafkaError::new(ErrorCode::InvalidGroupId, "empty group id"));
        }
        let mut groups = self.groups.borrow_mut();
        if let Some(Group::Classic(g)) = groups.get(group) {
            if !g.is_empty() {
                return Err(KafkaError::new(
                    ErrorCode::GroupIdNotFound,
                    format!("group {group} is a classic group with members"),
                ));
            }
            groups.remove(group);
        }
        let entry = groups
            .entry(group.to_string())
            .or_insert_with(|| Group::Consumer(ConsumerGroup::new(group)));
        let Group::Consumer(g) = entry else {
            return Err(KafkaError::new(
                ErrorCode::GroupIdNotFound,
                "not a consumer group",
            ));
        };
        g.heartbeat(r, &RegistryTopics(reg), Instant::now())
    }

    pub fn consumer_describe(&self, reg: &Registry, group: &str) -> ConsumerDescribed {
        let mut d = ConsumerDescribed {
            group: group.to_string(),
            ..Default::default()
        };
        if !self.loaded.get() {
            d.error = ErrorCode::CoordinatorLoadInProgress;
            return d;
        }
        let name_of = |id: &Uuid| {
            reg.topic_by_id(id)
                .map(|t| t.name.to_string())
                .unwrap_or_default()
        };
        let view = |set: &BTreeSet<consumer::Tp>| {
            let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in set {
                by.entry(*t).or_default().push(*p);
            }
            by.into_iter()
                .map(|(t, ps)| (t, name_of(&t), ps))
                .collect::<Vec<_>>()
        };
        match self.groups.borrow().get(group) {
            Some(Group::Consumer(g)) => {
                d.state = g.state_name().to_string();
                d.epoch = g.epoch;
                d.assignment_epoch = g.target_epoch;
                d.assignor = g.assignor.clone();
                d.members = g
                    .members
                    .values()
                    .map(|m| ConsumerMemberView {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        member_epoch: m.epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        subscribed: m.subscribed.clone(),
                        regex: m.regex.as_ref().map(|r| r.source.clone()),
                        assignment: view(&m.assigned),
                        target: view(&g.target.get(&m.id).cloned().unwrap_or_default()),
                    })
                    .collect();
            }
            Some(Group::Classic(_)) => d.error = ErrorCode::GroupIdNotFound,
            None => d.error = ErrorCode::GroupIdNotFound,
        }
        d
    }

    // --- housekeeping ---

    pub fn tick(&self, reg: &Registry) {
        let now = Instant::now();
        let lookup = RegistryTopics(reg);
        let mut groups = self.groups.borrow_mut();
        for g in groups.values_mut() {
            match g {
                Group::Classic(c) => c.tick(now),
                Group::Consumer(c) => c.tick(now, &lookup),
            }
        }
        // Forget membership state of groups that emptied; their offsets stay.
        groups.retain(|_, g| match g {
            Group::Classic(c) => !(c.is_empty() && c.state == classic::ClassicState::Empty),
            Group::Consumer(c) => !c.members.is_empty(),
        });
    }

    /// (group, topic, partition, committed offset) of every committed offset here.
    pub fn committed(&self) -> Vec<(String, String, i32, i64)> {
        let store = self.store.borrow();
        let Some(store) = store.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (g, offs) in store.offsets().iter() {
            for ((t, p), c) in offs {
                out.push((g.clone(), t.clone(), *p, c.offset));
            }
        }
        out
    }
}

impl Coordinator {
    /// Keep sessions, join phases and revocations moving until shutdown.
    pub fn spawn_tick(self: &Rc<Self>, shutdown: Rc<Signal>) {
        let me = self.clone();
        glommio::spawn_local(async move {
            while shutdown.sleep(TICK).await {
                me.tick(&me.registry());
            }
        })
        .detach();
    }
}
