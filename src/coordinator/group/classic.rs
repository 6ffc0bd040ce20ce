//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup): the broker
//! runs the membership state machine, the group leader assigns partitions client-side.
//!
//! Empty → PreparingRebalance (members rejoin, up to the rebalance timeout) →
//! CompletingRebalance (the leader sends the assignment in SyncGroup) → Stable.
//! Static members (KIP-345, `group.instance.id`) keep their place across restarts; new
//! dynamic members first get MEMBER_ID_REQUIRED with their id (KIP-394, JoinGroup v4+).
//!
//! Everything here is synchronous and takes `now` as an argument, so tests drive time.
//! Requests that wait (JoinGroup, SyncGroup) leave a oneshot sender in the member.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;

use crate::kafka::ErrorCode;

/// Members that vanish cause these at any rate.
static EXPIRED_LOG: crate::metrics::log_limit::LogLimit =
    crate::metrics::log_limit::LogLimit::per_second();

/// Kafka's `group.initial.rebalance.delay.ms` is 3 s; a shorter wait still lets
/// consumers started together land in one generation.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(500);
pub const MIN_SESSION_TIMEOUT_MS: i32 = 1_000;
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// The names DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member must first learn its id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining in Stable may skip the assignment.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// SyncGroup: the leader's `assignments`; followers send none.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub generation: i32,
    pub instance_id: Option<String>,
    /// v5+: must match the group's protocol type and name when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> SyncResult {
        SyncResult {
            error,
            ..Default::default()
        }
    }
}

pub struct ClassicMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<(oneshot::Sender<JoinResult>, bool)>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    deadline: Instant,
    order: u64,
}

impl ClassicMember {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
}

pub struct ClassicGroup {
    pub id: String,
    pub state: ClassicState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, ClassicMember>,
    /// group.instance.id → member id of the static members.
    statics: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: HashMap<String, Instant>,
    /// End of the join phase (PreparingRebalance) or of the sync phase.
    phase_deadline: Option<Instant>,
    /// The join phase of a group that was empty waits out the initial delay.
    initial_delay: bool,
    next_order: u64,
}

fn send<T>(tx: oneshot::Sender<T>, v: T) {
    // The requester may have gone (connection closed); nothing to tell it then.
    let _ = tx.send(v);
}

impl ClassicGroup {
    pub fn new(id: &str) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            phase_deadline: None,
            initial_delay: false,
            next_order: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Can a member with these protocols join, next to the members other than `except`?
    fn compatible(&self, r: &JoinRequest, except: Option<&str>) -> bool {
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return false;
        }
        let others: Vec<&ClassicMember> = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != except)
            .collect();
        if others.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(r.protocol_type.as_str())
            && r.protocols
                .iter()
                .any(|(n, _)| others.iter().all(|m| m.supports(n)))
    }

    pub fn join(&mut self, r: JoinRequest, now: Instant, tx: oneshot::Sender<JoinResult>) {
        if self.state == ClassicState::Dead {
            return send(
                tx,
                JoinResult::error(ErrorCode::CoordinatorNotAvailable, &r.member_id),
            );
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&r.session_timeout_ms) {
            return send(
                tx,
                JoinResult::error(ErrorCode::InvalidSessionTimeout, &r.member_id),
            );
        }
        let except = (!r.member_id.is_empty()).then_some(r.member_id.as_str());
        if !self.compatible(&r, except) {
            return send(
                tx,
                JoinResult::error(ErrorCode::InconsistentGroupProtocol, &r.member_id),
            );
        }
        if r.member_id.is_empty() {
            self.join_new(r, now, tx)
        } else {
            self.join_known(r, now, tx)
        }
    }

    fn new_member_id(r: &JoinRequest) -> String {
        let prefix = if r.client_id.is_empty() {
            "member"
        } else {
            r.client_id.as_str()
        };
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    fn join_new(&mut self, r: JoinRequest, now: Instant, tx: oneshot::Sender<JoinResult>) {
        let id = Self::new_member_id(&r);
        if let Some(instance) = r.instance_id.clone() {
            if let Some(old) = self.statics.get(&instance).cloned() {
                return self.replace_static(&old, id, r, now, tx);
            }
            // KIP-345: a static member needs no MEMBER_ID_REQUIRED round trip.
            return self.add_member(id, r, now, tx);
        }
        if r.require_known_member_id {
            let deadline = now + Duration::from_millis(r.session_timeout_ms as u64);
            self.pending.insert(id.clone(), deadline);
            return send(tx, JoinResult::error(ErrorCode::MemberIdRequired, &id));
        }
        self.add_member(id, r, now, tx)
    }

    fn join_known(&mut self, r: JoinRequest, now: Instant, tx: oneshot::Sender<JoinResult>) {
        let id = r.member_id.clone();
        if self.pending.remove(&id).is_some() {
            return self.add_member(id, r, now, tx);
        }
        if let Err(code) = self.check_member(&id, r.instance_id.as_deref()) {
            return send(tx, JoinResult::error(code, &id));
        }
        let changed = {
            let Some(m) = self.members.get_mut(&id) else {
                return send(tx, JoinResult::error(ErrorCode::UnknownMemberId, &id));
            };
            let changed = m.protocols != r.protocols;
            m.protocols = r.protocols.clone();
            m.session_timeout = Duration::from_millis(r.session_timeout_ms as u64);
            m.rebalance_timeout = Duration::from_millis(r.rebalance_timeout_ms.max(0) as u64);
            m.deadline = now + m.session_timeout;
            changed
        };
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            ClassicState::PreparingRebalance => {
                self.set_join_waiter(&id, tx, r.supports_skip_assignment);
                self.maybe_complete_join(now);
            }
            ClassicState::CompletingRebalance | ClassicState::Stable
                if !(changed || is_leader && self.state == ClassicState::Stable) =>
            {
                // The member missed the JoinGroup answer, or a follower rejoins with
                // nothing new: answer with the current generation.
                let res = self.join_result_for(&id, false);
                send(tx, res);
            }
            _ => {
                self.set_join_waiter(&id, tx, r.supports_skip_assignment);
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
            }
        }
    }

    fn set_join_waiter(&mut self, id: &str, tx: oneshot::Sender<JoinResult>, skip: bool) {
        if let Some(m) = self.members.get_mut(id) {
            if let Some((old, _)) = m.join_waiter.replace((tx, skip)) {
                send(old, JoinResult::error(ErrorCode::UnknownMemberId, id));
            }
        }
    }

    fn add_member(
        &mut self,
        id: String,
        r: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(r.protocol_type.clone());
        }
        let session = Duration::from_millis(r.session_timeout_ms as u64);
        if let Some(i) = &r.instance_id {
            self.statics.insert(i.clone(), id.clone());
        }
        self.next_order += 1;
        self.members.insert(
            id.clone(),
            ClassicMember {
                member_id: id,
                instance_id: r.instance_id,
                client_id: r.client_id,
                client_host: r.client_host,
                session_timeout: session,
                rebalance_timeout: Duration::from_millis(r.rebalance_timeout_ms.max(0) as u64),
                protocols: r.protocols,
                assignment: Bytes::new(),
                join_waiter: Some((tx, r.supports_skip_assignment)),
                sync_waiter: None,
                deadline: now + session,
                order: self.next_order,
            },
        );
        if self.state != ClassicState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
    }

    /// KIP-345: a static member rejoins with an empty member id: it takes the place of
    /// its previous incarnation, which is fenced.
    fn replace_static(
        &mut self,
        old_id: &str,
        new_id: String,
        r: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let Some(mut m) = self.members.remove(old_id) else {
            return self.add_member(new_id, r, now, tx);
        };
        if let Some((w, _)) = m.join_waiter.take() {
            send(w, JoinResult::error(ErrorCode::FencedInstanceId, old_id));
        }
        if let Some(w) = m.sync_waiter.take() {
            send(w, SyncResult::error(ErrorCode::FencedInstanceId));
        }
        let changed = m.protocols != r.protocols;
        m.member_id = new_id.clone();
        m.protocols = r.protocols;
        m.client_id = r.client_id;
        m.client_host = r.client_host;
        m.session_timeout = Duration::from_millis(r.session_timeout_ms as u64);
        m.rebalance_timeout = Duration::from_millis(r.rebalance_timeout_ms.max(0) as u64);
        m.deadline = now + m.session_timeout;
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(i) = &m.instance_id {
            self.statics.insert(i.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), m);
        if self.state == ClassicState::Stable && !changed {
            // No rebalance: the member gets the current generation and, through
            // SyncGroup, the assignment it had.
            let leader = self.leader.as_deref() == Some(new_id.as_str());
            let mut res = self.join_result_for(&new_id, leader);
            res.skip_assignment = leader && r.supports_skip_assignment;
            return send(tx, res);
        }
        self.set_join_waiter(&new_id, tx, r.supports_skip_assignment);
        if self.state != ClassicState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
    }

    /// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID if `id` may not act in this group.
    fn check_member(&self, id: &str, instance: Option<&str>) -> Result<(), ErrorCode> {
        if let Some(i) = instance {
            match self.statics.get(i) {
                Some(current) if current != id => return Err(ErrorCode::FencedInstanceId),
                _ => {}
            }
        }
        if self.members.contains_key(id) {
            Ok(())
        } else {
            Err(ErrorCode::UnknownMemberId)
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == ClassicState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    send(w, SyncResult::error(ErrorCode::RebalanceInProgress));
                }
            }
        }
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        let initial = self.state == ClassicState::Empty;
        let timeout = self.max_rebalance_timeout();
        self.state = ClassicState::PreparingRebalance;
        self.initial_delay = initial;
        self.phase_deadline = Some(
            now + if initial {
                INITIAL_REBALANCE_DELAY.min(timeout)
            } else {
                timeout
            },
        );
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state == ClassicState::PreparingRebalance
            && !self.initial_delay
            && self.all_joined()
        {
            self.complete_join(now);
        }
    }

    /// The protocol most members prefer among those every member supports.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().min_by_key(|m| m.order)?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| *c == n))
            {
                votes[i] += 1;
            }
        }
        let best = votes
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, usize::MAX - *i))?;
        Some(candidates[best.0].clone())
    }

    fn complete_join(&mut self, now: Instant) {
        // Dynamic members that did not rejoin in time leave; static ones stay until
        // their session expires (KIP-345).
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.initial_delay = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol = None;
            self.leader = None;
            self.phase_deadline = None;
            return;
        }
        self.protocol = self.select_protocol();
        let leader_ok = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.get(l).is_some_and(|m| m.join_waiter.is_some()));
        if !leader_ok {
            self.leader = self
                .members
                .values()
                .filter(|m| m.join_waiter.is_some())
                .min_by_key(|m| m.order)
                .map(|m| m.member_id.clone());
        }
        self.state = ClassicState::CompletingRebalance;
        self.phase_deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let res = self.join_result_for(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                m.deadline = now + m.session_timeout;
                if let Some((w, _)) = m.join_waiter.take() {
                    send(w, res);
                }
            }
        }
    }

    fn join_result_for(&self, id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_by_key(|m| m.order);
        JoinResult {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members: if with_members {
                members
                    .into_iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some((w, _)) = m.join_waiter.take() {
                send(w, JoinResult::error(ErrorCode::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                send(w, SyncResult::error(ErrorCode::UnknownMemberId));
            }
            if let Some(i) = &m.instance_id {
                if self.statics.get(i).map(String::as_str) == Some(id) {
                    self.statics.remove(i);
                }
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// After members left or expired: rebalance the rest.
    fn members_changed(&mut self, now: Instant) {
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }

    pub fn sync(&mut self, r: SyncRequest, now: Instant, tx: oneshot::Sender<SyncResult>) {
        let member_id = r.member_id.as_str();
        if let Err(code) = self.check_member(member_id, r.instance_id.as_deref()) {
            return send(tx, SyncResult::error(code));
        }
        if r.generation != self.generation {
            return send(tx, SyncResult::error(ErrorCode::IllegalGeneration));
        }
        let (ptype, pname) = (r.protocol_type.as_deref(), r.protocol_name.as_deref());
        let assignments = r.assignments;
        if ptype.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || pname.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return send(tx, SyncResult::error(ErrorCode::InconsistentGroupProtocol));
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        match self.state {
            ClassicState::PreparingRebalance => {
                send(tx, SyncResult::error(ErrorCode::RebalanceInProgress))
            }
            ClassicState::Stable => {
                let res = self.sync_result_for(member_id);
                send(tx, res)
            }
            ClassicState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        send(old, SyncResult::error(ErrorCode::RebalanceInProgress));
                    }
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.state = ClassicState::Stable;
                    self.phase_deadline = None;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let res = self.sync_result_for(&id);
                        if let Some(w) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            send(w, res);
                        }
                    }
                }
            }
            ClassicState::Empty | ClassicState::Dead => {
                send(tx, SyncResult::error(ErrorCode::UnknownMemberId))
            }
        }
    }

    fn sync_result_for(&self, id: &str) -> SyncResult {
        SyncResult {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        instance_id: Option<&str>,
        now: Instant,
    ) -> ErrorCode {
        if let Err(code) = self.check_member(member_id, instance_id) {
            return code;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        match self.state {
            ClassicState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            ClassicState::CompletingRebalance | ClassicState::Stable => ErrorCode::None,
            ClassicState::Empty | ClassicState::Dead => ErrorCode::UnknownMemberId,
        }
    }

    /// LeaveGroup: one result code per (member id, instance id).
    pub fn leave(&mut self, who: &[(String, Option<String>)], now: Instant) -> Vec<ErrorCode> {
        let mut changed = false;
        let codes = who
            .iter()
            .map(|(id, instance)| {
                let target = match instance {
                    Some(i) => match self.statics.get(i) {
                        None => return ErrorCode::UnknownMemberId,
                        Some(cur) if !id.is_empty() && cur != id => {
                            return ErrorCode::FencedInstanceId
                        }
                        Some(cur) => cur.clone(),
                    },
                    None => id.clone(),
                };
                if self.pending.remove(&target).is_some() {
                    return ErrorCode::None;
                }
                if !self.members.contains_key(&target) {
                    return ErrorCode::UnknownMemberId;
                }
                self.remove_member(&target);
                changed = true;
                ErrorCode::None
            })
            .collect();
        if changed {
            self.members_changed(now);
        }
        codes
    }

    /// May this member commit offsets now? (OffsetCommit in the classic protocol.)
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        generation: i32,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        if generation < 0 && self.members.is_empty() {
            // A consumer outside the group protocol (assign() + commit), whatever member
            // id it names: allowed while no member runs the protocol, as in Kafka.
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() {
            return Err(ErrorCode::UnknownMemberId);
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        Ok(())
    }

    /// Expire sessions and pending member ids, end join and sync phases that ran out.
    pub fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && m.deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        let mut changed = !expired.is_empty();
        for id in &expired {
            if let Some(held_back) = EXPIRED_LOG.admit() {
                tracing::info!(group = %self.id, member = %id, held_back, "session expired; removing member");
            }
            self.remove_member(id);
        }
        let phase_over = self.phase_deadline.is_some_and(|d| d <= now);
        match self.state {
            ClassicState::PreparingRebalance if phase_over => {
                self.complete_join(now);
                changed = false;
            }
            ClassicState::CompletingRebalance if phase_over => {
                // The leader never sent its assignment, or members never synced:
                // those who did not sync leave, the rest rebalance.
                let lazy: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in &lazy {
                    self.remove_member(id);
                }
                changed = true;
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now),
            _ => {}
        }
        if changed {
            self.members_changed(now);
        }
    }

    /// The members as DescribeGroups shows them, in join order.
    pub fn describe_members(&self) -> Vec<super::DescribedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut ms: Vec<&ClassicMember> = self.members.values().collect();
        ms.sort_by_key(|m| m.order);
        ms.into_iter()
            .map(|m| super::DescribedMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// The subscribed topic names of the members (ConsumerProtocolSubscription, if the
    /// group runs the "consumer" protocol type and the metadata decodes).
    pub fn subscribed_topics(&self) -> Option<std::collections::BTreeSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut out = std::collections::BTreeSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            let v = version.clamp(0, 3);
            if let Ok(s) = ConsumerProtocolSubscription::decode(&mut meta, v) {
                out.extend(s.topics.into_iter().map(|t| t.to_string()));
            }
        }
        Some(out)
    }

    pub fn mark_dead(&mut self) {
        self.state = ClassicState::Dead;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn join(g: &mut ClassicGroup, r: JoinRequest, now: Instant) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        g.join(r, now, tx);
        rx
    }

    fn ready<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
        rx.try_recv().expect("sender kept or answered")
    }

    /// A dynamic member's two-step join (KIP-394); returns its id and pending answer.
    fn join_dynamic(g: &mut ClassicGroup, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
        let mut rx = join(g, req("", None), now);
        let r = ready(&mut rx).unwrap();
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        let id = r.member_id;
        let rx = join(g, req(&id, None), now);
        (id, rx)
    }

    fn sync(
        g: &mut ClassicGroup,
        id: &str,
        gen: i32,
        a: Vec<(String, Bytes)>,
        now: Instant,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let r = SyncRequest {
            member_id: id.into(),
            generation: gen,
            assignments: a,
            ..Default::default()
        };
        g.sync(r, now, tx);
        rx
    }

    #[test]
    fn two_members_join_sync_and_heartbeat() {
        let t0 = Instant::now();
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_dynamic(&mut g, t0);
        let (b, mut rb) = join_dynamic(&mut g, t0);
        // The initial delay holds the first join phase open.
        assert!(ready(&mut ra).is_none());
        assert_eq!(g.state, ClassicState::PreparingRebalance);
        g.tick(t0 + INITIAL_REBALANCE_DELAY);
        let ja = ready(&mut ra).unwrap();
        let jb = ready(&mut rb).unwrap();
        assert_eq!((ja.error, jb.error), (ErrorCode::None, ErrorCode::None));
        assert_eq!(ja.generation, 1);
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
        assert_eq!(ja.leader, a);
        assert_eq!(ja.members.len(), 2);
        assert!(jb.members.is_empty());
        assert_eq!(g.state, ClassicState::CompletingRebalance);
        // The follower waits for the leader's assignment.
        let mut sb = sync(&mut g, &b, 1, vec![], t0);
        assert!(ready(&mut sb).is_none());
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        let mut sa = sync(&mut g, &a, 1, assignments, t0);
        assert_eq!(ready(&mut sa).unwrap().assignment, Bytes::from_static(b"A"));
        assert_eq!(ready(&mut sb).unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(g.state, ClassicState::Stable);
        assert_eq!(g.heartbeat(&a, 1, None, t0), ErrorCode::None);
        assert_eq!(g.heartbeat(&a, 0, None, t0), ErrorCode::IllegalGeneration);
        assert_eq!(
            g.heartbeat("nobody", 1, None, t0),
            ErrorCode::UnknownMemberId
        );
    }

    fn stable_pair(t0: Instant) -> (ClassicGroup, String, String) {
        let mut g = ClassicGroup::new("g");
        let (a, mut ra) = join_dynamic(&mut g, t0);
        let (b, mut rb) = join_dynamic(&mut g, t0);
        g.tick(t0 + INITIAL_REBALANCE_DELAY);
        let gen = ready(&mut ra).unwrap().generation;
        ready(&mut rb).unwrap();
        let mut sb = sync(&mut g, &b, gen, vec![], t0);
        let mut sa = sync(&mut g, &a, gen, vec![], t0);
        ready(&mut sa).unwrap();
        ready(&mut sb).unwrap();
        (g, a, b)
    }

    #[test]
    fn a_leaving_member_triggers_a_rebalance_of_the_rest() {
        let t0 = Instant::now();
        let (mut g, a, b) = stable_pair(t0);
        assert_eq!(g.leave(&[(a.clone(), None)], t0), vec![ErrorCode::None]);
        assert_eq!(g.state, ClassicState::PreparingRebalance);
        assert_eq!(g.heartbeat(&b, 1, None, t0), ErrorCode::RebalanceInProgress);
        let mut rb = join(&mut g, req(&b, None), t0);
        let jb = ready(&mut rb).unwrap();
        assert_eq!(jb.generation, 2);
        assert_eq!(jb.leader, b);
        assert_eq!(g.leave(&[(a, None)], t0), vec![ErrorCode::UnknownMemberId]);
    }

    #[test]
    fn an_expired_session_removes_the_member() {
        let t0 = Instant::now();
        let (mut g, a, b) = stable_pair(t0);
        let t1 = t0 + Duration::from_secs(8);
        assert_eq!(g.heartbeat(&b, 1, None, t1), ErrorCode::None);
        g.tick(t0 + Duration::from_secs(11));
        assert!(!g.members.contains_key(&a));
        assert!(g.members.contains_key(&b));
        assert_eq!(g.state, ClassicState::PreparingRebalance);
        // b does not rejoin within the rebalance timeout: it is removed too.
        g.tick(t0 + Duration::from_secs(45));
        assert_eq!(g.state, ClassicState::Empty);
        assert!(g.members.is_empty());
    }

    #[test]
    fn a_member_that_misses_the_join_phase_is_dropped() {
        let t0 = Instant::now();
        let (mut g, a, b) = stable_pair(t0);
        // A third member joins; a rejoins, b never does.
        let (c, mut rc) = join_dynamic(&mut g, t0);
        let mut ra = join(&mut g, req(&a, None), t0);
        assert!(ready(&mut rc).is_none());
        g.tick(t0 + Duration::from_secs(31));
        assert_eq!(ready(&mut ra).unwrap().generation, 2);
        assert_eq!(ready(&mut rc).unwrap().generation, 2);
        assert!(!g.members.contains_key(&b));
        assert_eq!(g.heartbeat(&b, 2, None, t0), ErrorCode::UnknownMemberId);
        let _ = c;
    }

    #[test]
    fn a_static_member_rejoining_replaces_itself_without_a_rebalance() {
        let t0 = Instant::now();
        let mut g = ClassicGroup::new("g");
        let mut r1 = join(&mut g, req("", Some("i1")), t0);
        let mut r2 = join(&mut g, req("", Some("i2")), t0);
        g.tick(t0 + INITIAL_REBALANCE_DELAY);
        let j1 = ready(&mut r1).unwrap();
        let j2 = ready(&mut r2).unwrap();
        assert_eq!(j1.error, ErrorCode::None);
        let mut s2 = sync(&mut g, &j2.member_id, 1, vec![], t0);
        let mut s1 = sync(
            &mut g,
            &j1.member_id,
            1,
            vec![
                (j1.member_id.clone(), Bytes::from_static(b"one")),
                (j2.member_id.clone(), Bytes::from_static(b"two")),
            ],
            t0,
        );
        ready(&mut s1).unwrap();
        ready(&mut s2).unwrap();
        // i2 restarts: empty member id, same instance id.
        let mut r2b = join(&mut g, req("", Some("i2")), t0);
        let j2b = ready(&mut r2b).unwrap();
        assert_eq!(j2b.error, ErrorCode::None);
        assert_eq!(j2b.generation, 1, "no rebalance");
        assert_ne!(j2b.member_id, j2.member_id);
        assert_eq!(g.state, ClassicState::Stable);
        let mut s2b = sync(&mut g, &j2b.member_id, 1, vec![], t0);
        assert_eq!(
            ready(&mut s2b).unwrap().assignment,
            Bytes::from_static(b"two")
        );
        // The old incarnation is fenced.
        assert_eq!(
            g.heartbeat(&j2.member_id, 1, Some("i2"), t0),
            ErrorCode::FencedInstanceId
        );
        assert_eq!(
            g.validate_commit(&j2.member_id, 1, Some("i2"), t0),
            Err(ErrorCode::FencedInstanceId)
        );
        assert_eq!(g.validate_commit(&j2b.member_id, 1, Some("i2"), t0), Ok(()));
    }

    #[test]
    fn commits_are_checked_against_member_and_generation() {
        let t0 = Instant::now();
        let (mut g, a, _b) = stable_pair(t0);
        assert_eq!(g.validate_commit(&a, 1, None, t0), Ok(()));
        assert_eq!(
            g.validate_commit(&a, 7, None, t0),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.validate_commit("x", 1, None, t0),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(
            g.validate_commit("", -1, None, t0),
            Err(ErrorCode::UnknownMemberId)
        );
        let mut empty = ClassicGroup::new("e");
        assert_eq!(empty.validate_commit("", -1, None, t0), Ok(()));
    }

    #[test]
    fn protocols_are_chosen_by_vote_and_incompatible_members_refused() {
        let t0 = Instant::now();
        let mut g = ClassicGroup::new("g");
        let mut r = req("", None);
        r.require_known_member_id = false;
        r.protocols = vec![
            ("roundrobin".into(), Bytes::new()),
            ("range".into(), Bytes::new()),
        ];
        let mut ra = join(&mut g, r.clone(), t0);
        let mut rb = join(&mut g, r.clone(), t0);
        let mut rc = join(&mut g, req("", None), t0); // MEMBER_ID_REQUIRED
        assert_eq!(ready(&mut rc).unwrap().error, ErrorCode::MemberIdRequired);
        let mut bad = r;
        bad.protocols = vec![("sticky".into(), Bytes::new())];
        let mut rd = join(&mut g, bad, t0);
        assert_eq!(
            ready(&mut rd).unwrap().error,
            ErrorCode::InconsistentGroupProtocol
        );
        g.tick(t0 + Duration::from_secs(11)); // the pending id expires
        g.tick(t0 + Duration::from_secs(11));
        assert_eq!(
            ready(&mut ra).unwrap().protocol_name.as_deref(),
            Some("roundrobin")
        );
        ready(&mut rb).unwrap();
    }
}
