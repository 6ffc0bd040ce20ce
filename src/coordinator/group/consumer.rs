//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat): the broker assigns
//! partitions itself and members reconcile towards their target assignment one
//! heartbeat at a time.
//!
//! The group epoch grows whenever membership, subscriptions or the partition counts of
//! subscribed topics change; a new target assignment is computed for that epoch. A member
//! moves to the target epoch only after it has revoked every partition it must give up
//! (it heartbeats without them); a partition is handed to its new owner only once the
//! previous owner has released it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::kafka::{ErrorCode, KafkaError};

/// Members that vanish cause these at any rate.
static FENCED_LOG: crate::metrics::log_limit::LogLimit =
    crate::metrics::log_limit::LogLimit::per_second();

/// Kafka's `group.consumer.session.timeout.ms`.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's `group.consumer.heartbeat.interval.ms` is 5 s; a shorter interval makes
/// partitions move sooner after a member leaves.
pub const HEARTBEAT_INTERVAL_MS: i32 = 1_000;
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// A topic partition by topic id (as KIP-848 assignments name them).
pub type Tp = (Uuid, i32);

/// What the coordinator knows of a subscribed topic: its id and partition count.
pub type TopicInfo = BTreeMap<String, (Uuid, i32)>;

/// The member epoch a static member leaves with (KIP-345 under KIP-848): it keeps its
/// place and assignment until its session ends, for a successor with its instance id.
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// The topics a group can subscribe to: the shard's registry snapshot.
pub trait Topics {
    /// Id and partition count of those of `names` that exist.
    fn info(&self, names: &BTreeSet<String>) -> TopicInfo;
    /// Every topic name, for regex subscriptions (borrowed: only the matches are copied).
    fn names(&self) -> Vec<&str>;
}

/// A plain lookup (tests): it knows no names to match a regex against.
impl<F: Fn(&BTreeSet<String>) -> TopicInfo> Topics for F {
    fn info(&self, names: &BTreeSet<String>) -> TopicInfo {
        self(names)
    }
    fn names(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// A KIP-848 `SubscribedTopicRegex`, compiled. Kafka compiles it with RE2/J and matches
/// whole topic names (`Matcher.matches`); the `regex` crate is of the same RE2 family
/// (linear time, no backreferences or lookaround), anchored here to the whole name.
/// What differs: `regex` also takes class set operations (`[a-z&&[^x]]`) and the
/// `x` flag, which RE2/J refuses, and its `\d`, `\w`, `\s` are Unicode-aware where
/// RE2/J's are ASCII — topic names are ASCII, so no accepted pattern matches other
/// topics than in Kafka.
#[derive(Debug, Clone)]
pub struct TopicRegex {
    pub source: String,
    compiled: regex::Regex,
}

/// The longest pattern compiled (a bound on the work per heartbeat; Kafka has none).
const MAX_REGEX_BYTES: usize = 4096;

impl TopicRegex {
    pub fn new(source: &str) -> Result<TopicRegex, KafkaError> {
        let invalid = |why: String| {
            err(
                ErrorCode::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{source}` is not a valid regular expression: {why}"),
            )
        };
        if source.len() > MAX_REGEX_BYTES {
            return Err(invalid(format!("longer than {MAX_REGEX_BYTES} bytes")));
        }
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| invalid(e.to_string().replace('\n', " ")))?;
        Ok(TopicRegex {
            source: source.to_string(),
            compiled,
        })
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.compiled.is_match(topic)
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// The partitions the member owns now (sent when they changed), by topic id.
    pub owned: Option<Vec<Tp>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Present when the member must (re)learn its assignment.
    pub assignment: Option<Vec<(Uuid, Vec<i32>)>>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub subscribed: Vec<String>,
    /// SubscribedTopicRegex: topics whose whole name matches are subscribed too.
    pub regex: Option<TopicRegex>,
    pub assignor: Option<String>,
    rebalance_timeout: Duration,
    /// Partitions the member owns as far as the coordinator has told it.
    pub assigned: BTreeSet<Tp>,
    /// Partitions taken away that the member has not confirmed releasing yet.
    revoking: BTreeSet<Tp>,
    /// The last assignment sent to the member.
    sent: Option<BTreeSet<Tp>>,
    deadline: Instant,
    revoke_deadline: Option<Instant>,
}

pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub target_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<Tp>>,
    /// The topic metadata the target was computed from.
    topics: TopicInfo,
    pub assignor: String,
}

fn group_tp(set: &BTreeSet<Tp>) -> Vec<(Uuid, Vec<i32>)> {
    let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        out.entry(*t).or_default().push(*p);
    }
    out.into_iter().collect()
}

fn err(code: ErrorCode, msg: impl Into<String>) -> KafkaError {
    KafkaError::new(code, msg)
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            target_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics: TopicInfo::new(),
            assignor: ASSIGNORS[0].to_string(),
        }
    }

    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.target_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Every topic name some member subscribes to, by name or by a regex matching one of
    /// the topics the group's assignment was last computed from.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        let known: Vec<&str> = self.topics.keys().map(String::as_str).collect();
        self.wanted(&known)
    }

    /// The names members subscribe to, and those of `candidates` a member's regex matches.
    fn wanted(&self, candidates: &[&str]) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect();
        let regexes: Vec<&TopicRegex> = self
            .members
            .values()
            .filter_map(|m| m.regex.as_ref())
            .collect();
        if !regexes.is_empty() {
            out.extend(
                candidates
                    .iter()
                    .filter(|t| regexes.iter().any(|r| r.matches(t)))
                    .map(|t| t.to_string()),
            );
        }
        out
    }

    /// The subscribed topics as they exist now: names, and regexes matched against every
    /// topic, so a topic created or deleted changes the group at the next heartbeat.
    fn resolve(&self, topics: &dyn Topics) -> TopicInfo {
        let all = if self.members.values().any(|m| m.regex.is_some()) {
            topics.names()
        } else {
            Vec::new()
        };
        topics.info(&self.wanted(&all))
    }

    /// One member's topics among those the group subscribes to.
    fn member_topics(m: &ConsumerMember, topics: &TopicInfo) -> Vec<String> {
        let mut out = m.subscribed.clone();
        if let Some(r) = &m.regex {
            out.extend(topics.keys().filter(|t| r.matches(t)).cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Handle one ConsumerGroupHeartbeat. `topics` resolves the names the group
    /// subscribes to (after this request's subscription change) to ids and sizes.
    pub fn heartbeat(
        &mut self,
        r: HeartbeatRequest,
        topics: &dyn Topics,
        now: Instant,
    ) -> Result<HeartbeatResult, KafkaError> {
        if r.member_id.is_empty() {
            return Err(err(
                ErrorCode::InvalidRequest,
                "MemberId can't be empty (KIP-1082)",
            ));
        }
        if let Some(a) = &r.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err(err(
                    ErrorCode::UnsupportedAssignor,
                    format!("assignor {a} is not supported"),
                ));
            }
        }
        if r.member_epoch < 0 {
            return Ok(self.leave(&r, topics, now));
        }
        // Empty clears the regex (KIP-848); a bad one is refused before anything changes.
        let regex = match r.regex.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(s) => Some(Some(TopicRegex::new(s)?)),
        };
        let mut changed = false;
        if r.member_epoch == 0 {
            changed |= self.join(&r, now)?;
        } else {
            self.check_epoch(&r)?;
        }
        let m = self
            .members
            .get_mut(&r.member_id)
            .ok_or_else(|| err(ErrorCode::UnknownMemberId, "unknown member"))?;
        m.deadline = now + SESSION_TIMEOUT;
        if r.rebalance_timeout_ms > 0 {
            m.rebalance_timeout = Duration::from_millis(r.rebalance_timeout_ms as u64);
        }
        if let Some(mut s) = r.subscribed.clone() {
            s.sort();
            s.dedup();
            if s != m.subscribed {
                m.subscribed = s;
                changed = true;
            }
        }
        if let Some(regex) = regex {
            let source = |r: &Option<TopicRegex>| r.as_ref().map(|r| r.source.clone());
            if source(&regex) != source(&m.regex) {
                m.regex = regex;
                changed = true;
            }
        }
        if r.assignor.is_some() && r.assignor != m.assignor {
            m.assignor = r.assignor.clone();
            changed = true;
        }
        if r.rack_id.is_some() {
            m.rack_id = r.rack_id.clone();
        }
        let info = self.resolve(topics);
        if info != self.topics {
            self.topics = info;
            changed = true;
        }
        if changed {
            self.bump_epoch();
        }
        Ok(self.reconcile(&r.member_id, r.owned.as_deref(), r.member_epoch == 0, now))
    }

    fn join(&mut self, r: &HeartbeatRequest, now: Instant) -> Result<bool, KafkaError> {
        if r.subscribed.is_none() && r.regex.is_none() && !self.members.contains_key(&r.member_id) {
            return Err(err(
                ErrorCode::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set on join",
            ));
        }
        if self.members.contains_key(&r.member_id) {
            // A member that lost its state rejoins: it owns nothing any more.
            if let Some(m) = self.members.get_mut(&r.member_id) {
                m.assigned.clear();
                m.revoking.clear();
                m.sent = None;
            }
            return Ok(false);
        }
        // Static membership: the same instance id takes over its predecessor's place
        // and assignment without a rebalance, once the predecessor has left with the
        // static epoch (-2); while it is still in the group the id is not released.
        let predecessor = r.instance_id.as_ref().and_then(|i| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(i))
        });
        if let Some(p) = predecessor.filter(|p| p.epoch != LEAVE_STATIC_EPOCH) {
            return Err(err(
                ErrorCode::UnreleasedInstanceId,
                format!(
                    "static member {} with instance id {} is still in the group",
                    p.id,
                    p.instance_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        let predecessor = predecessor.map(|m| m.id.clone());
        let mut m = ConsumerMember {
            id: r.member_id.clone(),
            instance_id: r.instance_id.clone(),
            rack_id: r.rack_id.clone(),
            client_id: r.client_id.clone(),
            client_host: r.client_host.clone(),
            epoch: 0,
            previous_epoch: -1,
            subscribed: Vec::new(),
            regex: None,
            assignor: None,
            rebalance_timeout: Duration::from_millis(r.rebalance_timeout_ms.max(1) as u64),
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            sent: None,
            deadline: now + SESSION_TIMEOUT,
            revoke_deadline: None,
        };
        let mut changed = true;
        if let Some(old_id) = predecessor {
            if let Some(old) = self.members.remove(&old_id) {
                m.subscribed = old.subscribed;
                m.regex = old.regex;
                m.assignor = old.assignor;
                if let Some(t) = self.target.remove(&old_id) {
                    self.target.insert(m.id.clone(), t);
                }
                changed = false;
            }
        }
        self.members.insert(m.id.clone(), m);
        Ok(changed)
    }

    fn check_epoch(&self, r: &HeartbeatRequest) -> Result<(), KafkaError> {
        let m = self.members.get(&r.member_id).ok_or_else(|| {
            err(
                ErrorCode::UnknownMemberId,
                format!("member {} is not in the group", r.member_id),
            )
        })?;
        if r.member_epoch == m.epoch {
            return Ok(());
        }
        // A retry after a lost response: the previous epoch with nothing unexpected owned.
        let owned_ok = r
            .owned
            .as_ref()
            .map(|o| {
                o.iter()
                    .all(|tp| m.assigned.contains(tp) || m.revoking.contains(tp))
            })
            .unwrap_or(true);
        if r.member_epoch == m.previous_epoch && owned_ok {
            return Ok(());
        }
        Err(err(
            ErrorCode::FencedMemberEpoch,
            format!("member epoch {} is not {}", r.member_epoch, m.epoch),
        ))
    }

    fn leave(
        &mut self,
        r: &HeartbeatRequest,
        topics: &dyn Topics,
        now: Instant,
    ) -> HeartbeatResult {
        let is_static = self
            .members
            .get(&r.member_id)
            .is_some_and(|m| m.instance_id.is_some());
        if r.member_epoch == LEAVE_STATIC_EPOCH && is_static {
            // Stays until its session ends, keeping its partitions for its successor.
            if let Some(m) = self.members.get_mut(&r.member_id) {
                m.epoch = LEAVE_STATIC_EPOCH;
                m.deadline = now + SESSION_TIMEOUT;
            }
        } else if self.members.remove(&r.member_id).is_some() {
            self.target.remove(&r.member_id);
            self.topics = self.resolve(topics);
            self.bump_epoch();
        }
        HeartbeatResult {
            member_id: r.member_id.clone(),
            member_epoch: r.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Membership or metadata changed: a new group epoch and its target assignment.
    fn bump_epoch(&mut self) {
        self.epoch += 1;
        let assignor = self
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        let current: BTreeMap<String, BTreeSet<Tp>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.assigned.clone()))
            .collect();
        let subs: BTreeMap<String, Vec<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), Self::member_topics(m, &self.topics)))
            .collect();
        self.target = if assignor == "range" {
            assign_range(&subs, &self.topics)
        } else {
            assign_uniform(&subs, &self.topics, &current)
        };
        self.assignor = assignor;
        self.target_epoch = self.epoch;
    }

    /// Move the member towards its target: revoke first, then take free partitions.
    fn reconcile(
        &mut self,
        id: &str,
        owned: Option<&[Tp]>,
        full: bool,
        now: Instant,
    ) -> HeartbeatResult {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let taken: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).copied())
            .collect();
        let target_epoch = self.target_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return HeartbeatResult {
                member_id: id.to_string(),
                member_epoch: -1,
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                assignment: None,
            };
        };
        if let Some(owned) = owned {
            let owned: BTreeSet<Tp> = owned.iter().copied().collect();
            m.revoking.retain(|tp| owned.contains(tp));
        }
        let revoke: BTreeSet<Tp> = m.assigned.difference(&target).copied().collect();
        if !revoke.is_empty() {
            for tp in &revoke {
                m.assigned.remove(tp);
            }
            m.revoking.extend(revoke);
            m.revoke_deadline = Some(now + m.rebalance_timeout);
        }
        if m.revoking.is_empty() {
            m.revoke_deadline = None;
            if m.epoch != target_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = target_epoch;
            }
            for tp in target.iter() {
                if !taken.contains(tp) {
                    m.assigned.insert(*tp);
                }
            }
        }
        let differs_from_client = owned.is_some_and(|o| {
            let o: BTreeSet<Tp> = o.iter().copied().collect();
            o != m.assigned
        });
        let send = full || m.sent.as_ref() != Some(&m.assigned) || differs_from_client;
        let assignment = send.then(|| {
            m.sent = Some(m.assigned.clone());
            group_tp(&m.assigned)
        });
        HeartbeatResult {
            member_id: id.to_string(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            assignment,
        }
    }

    /// OffsetCommit (KIP-848). Epoch -1 is an admin client or an assign()-only consumer
    /// (which has a member id under KIP-848): accepted while no member runs the protocol,
    /// as in Kafka's `ConsumerGroup.validateOffsetCommit`; else the member's epoch.
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), ErrorCode> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        self.validate_member_epoch(member_id, epoch)
    }

    /// OffsetFetch with a member id and epoch (KIP-848), and a commit's member check.
    pub fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), ErrorCode> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if epoch != m.epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Expire sessions and members that never revoked what they had to.
    pub fn tick(&mut self, now: Instant, topics: &dyn Topics) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            if let Some(held_back) = FENCED_LOG.admit() {
                tracing::info!(group = %self.id, member = %id, held_back, "member fenced: session or revocation timed out");
            }
            self.members.remove(id);
            self.target.remove(id);
        }
        self.topics = self.resolve(topics);
        self.bump_epoch();
    }
}

/// Partitions of the subscribed topics, with the members subscribed to each topic.
fn eligible(subs: &BTreeMap<String, Vec<String>>, topics: &TopicInfo) -> Vec<(Tp, Vec<String>)> {
    let mut out = Vec::new();
    for (name, (id, count)) in topics {
        let members: Vec<String> = subs
            .iter()
            .filter(|(_, s)| s.contains(name))
            .map(|(m, _)| m.clone())
            .collect();
        if members.is_empty() {
            continue;
        }
        for p in 0..*count {
            out.push(((*id, p), members.clone()));
        }
    }
    out
}

/// The uniform assignor: balanced counts, keeping current owners where the balance
/// allows (sticky), so few partitions move.
pub fn assign_uniform(
    subs: &BTreeMap<String, Vec<String>>,
    topics: &TopicInfo,
    current: &BTreeMap<String, BTreeSet<Tp>>,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let parts = eligible(subs, topics);
    if out.is_empty() {
        return out;
    }
    // Quotas as if subscriptions were the same: base, and one more for `extra` members.
    let n = out.len();
    let base = parts.len() / n;
    let mut extra = parts.len() % n;
    let mut quota: BTreeMap<String, usize> = out.keys().map(|m| (m.clone(), base)).collect();
    let mut free = Vec::new();
    // Stickiness: a partition stays with its current owner while under quota.
    for (tp, members) in &parts {
        let owner = current
            .iter()
            .find(|(m, set)| set.contains(tp) && members.contains(m))
            .map(|(m, _)| m.clone());
        match owner {
            Some(o) if out[&o].len() < quota[&o] => {
                out.get_mut(&o).map(|s| s.insert(*tp));
            }
            Some(o) if out[&o].len() == quota[&o] && extra > 0 => {
                extra -= 1;
                quota.entry(o.clone()).and_modify(|q| *q += 1);
                out.get_mut(&o).map(|s| s.insert(*tp));
            }
            _ => free.push((*tp, members.clone())),
        }
    }
    // The rest go to the least loaded eligible member.
    for (tp, members) in free {
        if let Some(m) = members.iter().min_by_key(|m| (out[*m].len(), (*m).clone())) {
            out.get_mut(m).map(|s| s.insert(tp));
        }
    }
    out
}

/// The range assignor: per topic, contiguous ranges over the sorted subscribed members.
pub fn assign_range(
    subs: &BTreeMap<String, Vec<String>>,
    topics: &TopicInfo,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (name, (id, count)) in topics {
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, s)| s.contains(name))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut p = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            for q in p..p + take {
                out.get_mut(*m).map(|s| s.insert((*id, q)));
            }
            p += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> (Uuid, TopicInfo) {
        let id = Uuid::from_u128(7);
        let mut t = TopicInfo::new();
        t.insert("t".into(), (id, 6));
        (id, t)
    }

    fn hb(member: &str, epoch: i32, owned: Option<Vec<Tp>>) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            owned,
            ..Default::default()
        }
    }

    fn owned(r: &HeartbeatResult) -> Vec<Tp> {
        r.assignment
            .clone()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t, p)))
            .collect()
    }

    #[test]
    fn a_partition_moves_only_after_its_old_owner_revoked_it() {
        let (_, info) = topic();
        let lookup = move |_: &BTreeSet<String>| info.clone();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a1 = g.heartbeat(hb("a", 0, Some(vec![])), &lookup, now).unwrap();
        assert_eq!(a1.member_epoch, 1);
        let a_owned = owned(&a1);
        assert_eq!(a_owned.len(), 6);
        // b joins: a must give up three partitions before b gets them.
        let b1 = g.heartbeat(hb("b", 0, Some(vec![])), &lookup, now).unwrap();
        assert_eq!(b1.member_epoch, 2);
        assert!(owned(&b1).is_empty(), "nothing is free yet");
        let a2 = g
            .heartbeat(hb("a", 1, Some(a_owned.clone())), &lookup, now)
            .unwrap();
        assert_eq!(a2.member_epoch, 1, "a stays at its epoch while revoking");
        let keep = owned(&a2);
        assert_eq!(keep.len(), 3);
        // b asks again: still nothing, a has not confirmed.
        let b2 = g.heartbeat(hb("b", 2, Some(vec![])), &lookup, now).unwrap();
        assert!(b2.assignment.is_none() || owned(&b2).is_empty());
        // a confirms the revocation and moves to epoch 2.
        let a3 = g
            .heartbeat(hb("a", 1, Some(keep.clone())), &lookup, now)
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b3 = g.heartbeat(hb("b", 2, Some(vec![])), &lookup, now).unwrap();
        let b_owned = owned(&b3);
        assert_eq!(b_owned.len(), 3);
        assert!(b_owned.iter().all(|tp| !keep.contains(tp)));
    }

    #[test]
    fn epochs_are_checked() {
        let (_, info) = topic();
        let lookup = move |_: &BTreeSet<String>| info.clone();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", 0, Some(vec![])), &lookup, now).unwrap();
        let e = g.heartbeat(hb("a", 5, None), &lookup, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::FencedMemberEpoch);
        let e = g.heartbeat(hb("x", 3, None), &lookup, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownMemberId);
        assert_eq!(g.validate_member_epoch("a", a.member_epoch), Ok(()));
        assert_eq!(
            g.validate_member_epoch("a", 0),
            Err(ErrorCode::StaleMemberEpoch)
        );
        assert_eq!(
            g.validate_member_epoch("x", 1),
            Err(ErrorCode::UnknownMemberId)
        );
        // Leaving: the other members get everything at the next epoch.
        let left = g.heartbeat(hb("a", -1, None), &lookup, now).unwrap();
        assert_eq!(left.member_epoch, -1);
        assert!(g.members.is_empty());
        assert_eq!(g.validate_member_epoch("", -1), Ok(()));
    }

    #[test]
    fn an_expired_member_is_fenced_and_its_partitions_reassigned() {
        let (_, info) = topic();
        let lookup = move |_: &BTreeSet<String>| info.clone();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(hb("a", 0, Some(vec![])), &lookup, now).unwrap();
        let b = g.heartbeat(hb("b", 0, Some(vec![])), &lookup, now).unwrap();
        let later = now + SESSION_TIMEOUT - Duration::from_secs(1);
        // b keeps heartbeating, a goes silent.
        let b = g
            .heartbeat(hb("b", b.member_epoch, Some(vec![])), &lookup, later)
            .unwrap();
        g.tick(now + SESSION_TIMEOUT + Duration::from_millis(1), &lookup);
        assert!(!g.members.contains_key("a"));
        let b = g
            .heartbeat(hb("b", b.member_epoch, None), &lookup, later)
            .unwrap();
        assert_eq!(owned(&b).len(), 6);
    }

    #[test]
    fn assignors_balance_and_stick() {
        let (id, info) = topic();
        let subs: BTreeMap<String, Vec<String>> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| (m.to_string(), vec!["t".to_string()]))
            .collect();
        let r = assign_range(&subs, &info);
        let sizes: Vec<usize> = r.values().map(|s| s.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1, 1]);
        assert!(r["a"].contains(&(id, 0)) && r["a"].contains(&(id, 1)));
        let u = assign_uniform(&subs, &info, &BTreeMap::new());
        let mut sizes: Vec<usize> = u.values().map(|s| s.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 1, 2, 2]);
        // d leaves: a, b and c keep what they had.
        let mut subs3 = subs.clone();
        subs3.remove("d");
        let u3 = assign_uniform(&subs3, &info, &u);
        for m in ["a", "b", "c"] {
            assert!(u[m].is_subset(&u3[m]), "{m} kept its partitions");
            assert_eq!(u3[m].len(), 2);
        }
    }

    struct Named(TopicInfo);

    impl Topics for Named {
        fn info(&self, names: &BTreeSet<String>) -> TopicInfo {
            self.0
                .iter()
                .filter(|(n, _)| names.contains(*n))
                .map(|(n, v)| (n.clone(), *v))
                .collect()
        }
        fn names(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }

    #[test]
    fn a_regex_subscription_follows_the_topics_that_match() {
        let mut all = TopicInfo::new();
        all.insert("orders-eu".into(), (Uuid::from_u128(1), 2));
        all.insert("orders-us".into(), (Uuid::from_u128(2), 2));
        all.insert("payments".into(), (Uuid::from_u128(3), 2));
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let mut r = hb("a", 0, Some(vec![]));
        r.subscribed = Some(vec![]); // librdkafka: an empty list and the regex
        r.regex = Some("orders-.*".into());
        let a = g.heartbeat(r, &Named(all.clone()), now).unwrap();
        assert_eq!(owned(&a).len(), 4, "both orders topics, whole names only");
        // A new matching topic joins the assignment at the next heartbeat.
        all.insert("orders-ap".into(), (Uuid::from_u128(4), 2));
        let a = g
            .heartbeat(
                hb("a", a.member_epoch, Some(owned(&a))),
                &Named(all.clone()),
                now,
            )
            .unwrap();
        assert_eq!(owned(&a).len(), 6);
        assert!(g.subscribed_topics().contains("orders-ap"));
        assert!(!g.subscribed_topics().contains("payments"));
        let mut bad = hb("b", 0, Some(vec![]));
        bad.regex = Some("orders-(".into());
        let e = g.heartbeat(bad, &Named(all), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRegularExpression);
    }

    #[test]
    fn a_static_member_takes_over_its_predecessor() {
        let (_, info) = topic();
        let lookup = move |_: &BTreeSet<String>| info.clone();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let mut r = hb("a1", 0, Some(vec![]));
        r.instance_id = Some("i".into());
        let a = g.heartbeat(r, &lookup, now).unwrap();
        let epoch = g.epoch;
        let mut r = hb("a2", 0, Some(vec![]));
        r.instance_id = Some("i".into());
        // a1 is still in the group: its instance id is not released.
        let e = g.heartbeat(r.clone(), &lookup, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnreleasedInstanceId);
        // a1 leaves as a static member: it keeps its place, a2 takes it over.
        let mut leave = hb("a1", LEAVE_STATIC_EPOCH, None);
        leave.instance_id = Some("i".into());
        g.heartbeat(leave, &lookup, now).unwrap();
        assert_eq!(g.epoch, epoch, "a static leave is no rebalance");
        let a2 = g.heartbeat(r, &lookup, now).unwrap();
        assert_eq!(g.epoch, epoch, "no new group epoch");
        assert_eq!(owned(&a2), owned(&a));
        assert!(!g.members.contains_key("a1"));
    }
}
