//! Share sessions (KIP-932): the partitions a member fetches from, kept on the shard
//! whose connection the member fetches on, so an incremental ShareFetch names only what
//! changed. Epoch 0 opens a session (replacing the member's old one), -1 closes it, and
//! every other request must carry the session's next epoch. The group's configs ride
//! with the session and are refreshed at most every `CONFIG_REFRESH_MS`.
//!
//! Bounded: at most `MAX_SESSIONS` per shard (SHARE_SESSION_LIMIT_REACHED past it);
//! sessions idle longer than `IDLE_MS` are evicted first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::kafka::ErrorCode;
use crate::partition::share::ShareConfig;
use crate::runtime::now_ms;

pub const MAX_SESSIONS: usize = 4096;
const IDLE_MS: i64 = 120_000;
pub const CONFIG_REFRESH_MS: i64 = 1_000;

/// A partition of a session: (topic id, topic name, partition).
pub type SessionPartition = (Uuid, Arc<str>, i32);

#[derive(Debug, Clone)]
pub struct Session {
    pub epoch: i32,
    pub partitions: Vec<SessionPartition>,
    pub config: Option<(ShareConfig, i64)>,
    last_used_ms: i64,
}

#[derive(Default)]
pub struct Sessions {
    map: RefCell<HashMap<(String, String), Session>>,
}

impl Sessions {
    /// Apply a ShareFetch's session epoch, added and forgotten partitions; the session
    /// as it now is (for epoch -1: as it was, and it is gone).
    pub fn update(
        &self,
        key: (String, String),
        epoch: i32,
        add: &[SessionPartition],
        forget: &[(Uuid, i32)],
    ) -> Result<Session, ErrorCode> {
        let now = now_ms();
        let mut map = self.map.borrow_mut();
        if epoch == 0 {
            if !map.contains_key(&key) && map.len() >= MAX_SESSIONS {
                map.retain(|_, s| now - s.last_used_ms < IDLE_MS);
                if map.len() >= MAX_SESSIONS {
                    return Err(ErrorCode::ShareSessionLimitReached);
                }
            }
            let s = Session {
                epoch: 1,
                partitions: dedup(add.to_vec()),
                config: None,
                last_used_ms: now,
            };
            map.insert(key, s.clone());
            return Ok(s);
        }
        if epoch == -1 {
            let mut s = map.remove(&key).ok_or(ErrorCode::ShareSessionNotFound)?;
            s.partitions.extend(add.iter().cloned());
            s.partitions = dedup(std::mem::take(&mut s.partitions));
            return Ok(s);
        }
        let s = map.get_mut(&key).ok_or(ErrorCode::ShareSessionNotFound)?;
        if s.epoch != epoch {
            return Err(ErrorCode::InvalidShareSessionEpoch);
        }
        s.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used_ms = now;
        s.partitions.extend(add.iter().cloned());
        s.partitions
            .retain(|(id, _, p)| !forget.contains(&(*id, *p)));
        s.partitions = dedup(std::mem::take(&mut s.partitions));
        Ok(s.clone())
    }

    /// ShareAcknowledge: the session must exist and the epoch match; acks do not move
    /// the epoch forward except as ShareFetch does (Kafka: both advance it).
    /// Closing (-1): the partitions the session had.
    pub fn check_ack(
        &self,
        key: &(String, String),
        epoch: i32,
    ) -> Result<Vec<SessionPartition>, ErrorCode> {
        if epoch == 0 {
            return Err(ErrorCode::InvalidShareSessionEpoch);
        }
        let mut map = self.map.borrow_mut();
        if epoch == -1 {
            return Ok(map.remove(key).map(|s| s.partitions).unwrap_or_default());
        }
        let s = map.get_mut(key).ok_or(ErrorCode::ShareSessionNotFound)?;
        if s.epoch != epoch {
            return Err(ErrorCode::InvalidShareSessionEpoch);
        }
        s.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used_ms = now_ms();
        Ok(Vec::new())
    }

    /// The group's config cached on the session, if fresh.
    pub fn cached_config(&self, key: &(String, String)) -> Option<ShareConfig> {
        let map = self.map.borrow();
        let (c, at) = map.get(key)?.config.as_ref()?;
        (now_ms() - at < CONFIG_REFRESH_MS).then(|| c.clone())
    }

    pub fn cache_config(&self, key: &(String, String), c: ShareConfig) {
        if let Some(s) = self.map.borrow_mut().get_mut(key) {
            s.config = Some((c, now_ms()));
        }
    }
}

fn dedup(mut v: Vec<SessionPartition>) -> Vec<SessionPartition> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|(id, _, p)| seen.insert((*id, *p)));
    v
}
