//! Share groups (KIP-932): membership and server-side assignment, on the group's owner
//! shard (the same hash as consumer groups, so FindCoordinator is unchanged), and the
//! group configs.
//!
//! Assignment: every member is assigned every partition of the topics it subscribes
//! to — in a share group members may share a partition, and the share partition on the
//! partition's owner makes sure no record goes to two members at once. The member
//! epoch moves whenever a member's assignment changes (a topic appears or grows).
//! Members that stop heartbeating for `share.session.timeout.ms` are removed; the
//! records they held come back when their locks expire.
//!
//! The share partitions themselves (records, locks, acks) are not here: they live on
//! the partitions' owners (`partition::share`).

pub mod configs;
pub mod messages;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use tracing::info;
use uuid::Uuid;

use crate::cluster::Registry;
use crate::coordinator::group::{owner_shard, TopicSource};
use crate::kafka::{ErrorCode, KafkaError, ShardId};
use crate::partition::share::ShareConfig;
use crate::runtime::{now_ms, Signal};
use configs::{ConfigJournal, ConfigRecord, Overrides};

const TICK: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// What a heartbeat answers: the same as a KIP-848 consumer group's.
pub use crate::coordinator::group::consumer::HeartbeatResult;

#[derive(Debug, Clone)]
pub struct ShareMember {
    pub id: String,
    pub epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assigned: Vec<(Uuid, Vec<i32>)>,
    last_seen_ms: i64,
}

#[derive(Debug, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
}

/// A share group as ShareGroupDescribe / ListGroups show it.
#[derive(Debug, Clone)]
pub struct Described {
    pub group: String,
    pub state: &'static str,
    pub epoch: i32,
    pub members: Vec<ShareMember>,
}

pub struct Coordinator {
    shard: ShardId,
    shards: usize,
    topics: TopicSource,
    groups: RefCell<BTreeMap<String, ShareGroup>>,
    journal: RefCell<Option<Rc<ConfigJournal>>>,
}

fn load_err() -> KafkaError {
    KafkaError::new(
        ErrorCode::CoordinatorLoadInProgress,
        "the share group coordinator is still loading",
    )
}

/// Every partition of the subscribed topics that exist, by topic id.
fn assignment(reg: &Registry, subscribed: &[String]) -> Vec<(Uuid, Vec<i32>)> {
    let mut names: Vec<&String> = subscribed.iter().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| reg.topic(n))
        .map(|t| (t.id, (0..t.partition_count()).collect()))
        .collect()
}

impl Coordinator {
    pub fn new(shard: ShardId, shards: usize, topics: TopicSource) -> Coordinator {
        Coordinator {
            shard,
            shards,
            topics,
            groups: RefCell::new(BTreeMap::new()),
            journal: RefCell::new(None),
        }
    }

    pub fn owns(&self, group: &str) -> bool {
        owner_shard(group, self.shards) == self.shard
    }

    pub async fn load(
        &self,
        data_dir: &std::path::Path,
        recovered: configs::Recovered,
    ) -> Result<(), String> {
        let n = recovered.state.0.len();
        let j = configs::open(data_dir, self.shard.0, recovered).await?;
        *self.journal.borrow_mut() = Some(Rc::new(j));
        info!(
            shard = self.shard.0,
            groups = n,
            "share group configs loaded"
        );
        Ok(())
    }

    fn journal(&self) -> Result<Rc<ConfigJournal>, KafkaError> {
        self.journal.borrow().clone().ok_or_else(load_err)
    }

    /// The group's overrides (empty for a group without any).
    pub fn overrides(&self, group: &str) -> Overrides {
        match self.journal.borrow().as_ref() {
            Some(j) => j
                .state()
                .0
                .get(group)
                .map(|(_, o)| o.clone())
                .unwrap_or_default(),
            None => Overrides::new(),
        }
    }

    pub fn share_config(&self, group: &str) -> ShareConfig {
        configs::share_config(&self.overrides(group))
    }

    /// (group, DLQ topic) of every group here with `errors.deadletterqueue.topic.name`.
    pub fn dlq_topics(&self) -> Vec<(String, String)> {
        let Some(j) = self.journal.borrow().clone() else {
            return Vec::new();
        };
        let state = j.state();
        state
            .0
            .iter()
            .filter_map(|(g, (_, o))| Some((g.clone(), configs::share_config(o).dlq_topic?)))
            .collect()
    }

    /// Replace the group's overrides (already validated), durably.
    pub async fn set_overrides(&self, group: &str, o: Overrides) -> Result<(), KafkaError> {
        let j = self.journal()?;
        let rec = if o.is_empty() {
            ConfigRecord::Delete {
                seq: j.next_seq(),
                group: group.to_string(),
            }
        } else {
            ConfigRecord::Set {
                seq: j.next_seq(),
                group: group.to_string(),
                configs: o.into_iter().collect(),
            }
        };
        j.append(vec![rec])
            .await
            .map_err(|e| KafkaError::new(ErrorCode::KafkaStorageError, e.to_string()))
    }

    /// ShareGroupHeartbeat: join (epoch 0), leave (-1), or keep alive and learn the
    /// assignment when it changed.
    pub fn heartbeat(
        &self,
        group: &str,
        r: HeartbeatRequest,
    ) -> Result<HeartbeatResult, KafkaError> {
        let interval = configs::value(&self.overrides(group), configs::HEARTBEAT_INTERVAL_MS)
            .parse()
            .unwrap_or(5000);
        let reg = (self.topics)();
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group.to_string()).or_default();
        let result = |id: &str, epoch, assignment| HeartbeatResult {
            member_id: id.to_string(),
            member_epoch: epoch,
            heartbeat_interval_ms: interval,
            assignment,
        };
        if r.member_epoch == -1 {
            if g.members.remove(&r.member_id).is_some() {
                g.epoch += 1;
            }
            return Ok(result(&r.member_id, -1, None));
        }
        if r.member_epoch == 0 {
            let subscribed = r.subscribed.clone().unwrap_or_default();
            if subscribed.is_empty() {
                return Err(KafkaError::new(
                    ErrorCode::InvalidRequest,
                    "a joining member must subscribe to at least one topic",
                ));
            }
            let id = if r.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                r.member_id.clone()
            };
            g.epoch += 1;
            let assigned = assignment(&reg, &subscribed);
            let m = ShareMember {
                id: id.clone(),
                epoch: g.epoch,
                rack_id: r.rack_id,
                client_id: r.client_id,
                client_host: r.client_host,
                subscribed,
                assigned: assigned.clone(),
                last_seen_ms: now_ms(),
            };
            g.members.insert(id.clone(), m);
            return Ok(result(&id, g.epoch, Some(assigned)));
        }
        let Some(m) = g.members.get_mut(&r.member_id) else {
            return Err(KafkaError::new(
                ErrorCode::UnknownMemberId,
                format!("member {} is not in share group {group}", r.member_id),
            ));
        };
        if r.member_epoch > m.epoch {
            return Err(KafkaError::new(
                ErrorCode::FencedMemberEpoch,
                format!("member epoch {} is ahead of {}", r.member_epoch, m.epoch),
            ));
        }
        m.last_seen_ms = now_ms();
        if let Some(s) = r.subscribed.filter(|s| !s.is_empty()) {
            m.subscribed = s;
        }
        let next = assignment(&reg, &m.subscribed);
        if next != m.assigned || r.member_epoch < m.epoch {
            if next != m.assigned {
                g.epoch += 1;
                m.epoch = g.epoch;
                m.assigned = next.clone();
            }
            return Ok(result(&m.id, m.epoch, Some(next)));
        }
        Ok(result(&m.id, m.epoch, None))
    }

    pub fn describe(&self, group: &str) -> Option<Described> {
        let groups = self.groups.borrow();
        let has_config = self
            .journal
            .borrow()
            .as_ref()
            .is_some_and(|j| j.state().0.contains_key(group));
        match groups.get(group) {
            Some(g) => Some(Described {
                group: group.to_string(),
                state: if g.members.is_empty() {
                    "Empty"
                } else {
                    "Stable"
                },
                epoch: g.epoch,
                members: g.members.values().cloned().collect(),
            }),
            None if has_config => Some(Described {
                group: group.to_string(),
                state: "Empty",
                epoch: 0,
                members: Vec::new(),
            }),
            None => None,
        }
    }

    /// Every share group this shard coordinates.
    pub fn list(&self) -> Vec<Described> {
        let mut names: Vec<String> = self.groups.borrow().keys().cloned().collect();
        if let Some(j) = self.journal.borrow().as_ref() {
            names.extend(j.state().0.keys().cloned());
        }
        names.sort();
        names.dedup();
        names.iter().filter_map(|g| self.describe(g)).collect()
    }

    /// DeleteGroups: only an empty group; its configs go too.
    pub async fn delete(&self, group: &str) -> ErrorCode {
        let known = {
            let groups = self.groups.borrow();
            match groups.get(group) {
                Some(g) if !g.members.is_empty() => return ErrorCode::NonEmptyGroup,
                Some(_) => true,
                None => false,
            }
        };
        let has_config = !self.overrides(group).is_empty();
        if !known && !has_config {
            return ErrorCode::GroupIdNotFound;
        }
        self.groups.borrow_mut().remove(group);
        if has_config {
            if let Err(e) = self.set_overrides(group, Overrides::new()).await {
                tracing::warn!("deleting the configs of share group {group}: {}", e.message);
                return ErrorCode::KafkaStorageError;
            }
        }
        ErrorCode::None
    }

    /// Remove members whose session timed out.
    pub fn tick(&self) {
        let now = now_ms();
        let mut groups = self.groups.borrow_mut();
        for (name, g) in groups.iter_mut() {
            let timeout: i64 = configs::value(&self.overrides(name), configs::SESSION_TIMEOUT_MS)
                .parse()
                .unwrap_or(45_000);
            let before = g.members.len();
            g.members.retain(|_, m| now - m.last_seen_ms < timeout);
            if g.members.len() != before {
                g.epoch += 1;
            }
        }
    }

    pub fn spawn_tick(self: &Rc<Self>, shutdown: Rc<Signal>) {
        let me = self.clone();
        glommio::spawn_local(async move {
            while shutdown.sleep(TICK).await {
                me.tick();
            }
        })
        .detach();
    }
}
