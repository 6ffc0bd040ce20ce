//! Client quotas (KIP-546's DescribeClientQuotas / AlterClientQuotas over KIP-13's
//! byte-rate quotas): `producer_byte_rate` of a quota entity — a user, a client id, or a
//! user's client id, each named or the default — on top of the broker-wide
//! `producer_byte_rate` of the config. Like the registry, an immutable snapshot changed
//! only by the controller, saved with `store::atomic`
//! (`<data-dir>/meta/client-quotas-v2.state`; the client-id-only file of earlier
//! versions, `client-quotas.state`, is read when the new one is absent) and installed on
//! every shard, where each connection's produce is measured against it (`net::quota`).
//!
//! A connection's quota is the first entity of Kafka's precedence that is set:
//! user + client id, user + default client, user, default user + client id, default
//! user + default client, default user, client id, default client id.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

/// The quota keys Sluice enforces (Kafka's names).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";

/// A quota entity: its user and client-id components. `None`: the entity has no such
/// component; `Some(None)`: the default user (or client id); `Some(Some(name))`: that one.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

impl QuotaEntity {
    /// The entity of a client id alone (`None`: the default client id).
    pub fn client(client_id: Option<String>) -> QuotaEntity {
        QuotaEntity {
            user: None,
            client_id: Some(client_id),
        }
    }
}

/// What `<data-dir>/meta/client-quotas-v2.state` holds: (entity, producer bytes per
/// second), sorted.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct QuotaRecord {
    pub producer_byte_rate: Vec<(QuotaEntity, u64)>,
}

/// What the client-id-only `client-quotas.state` of earlier versions holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct LegacyQuotaRecord {
    pub producer_byte_rate: Vec<(Option<String>, u64)>,
}

impl From<LegacyQuotaRecord> for QuotaRecord {
    fn from(r: LegacyQuotaRecord) -> QuotaRecord {
        QuotaRecord {
            producer_byte_rate: r
                .producer_byte_rate
                .into_iter()
                .map(|(c, rate)| (QuotaEntity::client(c), rate))
                .collect(),
        }
    }
}

/// One change: set (`Some`) or remove (`None`) the producer byte rate of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub producer_byte_rate: Option<u64>,
}

/// Every shard's view of the client quotas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientQuotas {
    /// Entities of a client id alone, by client id (looked up by `&str` on every produce
    /// request, without allocating), and the default client id's.
    by_client: HashMap<String, u64>,
    default_client: Option<u64>,
    /// Entities with a user component: a named user's, the default user's.
    users: HashMap<String, UserQuotas>,
    default_user: UserQuotas,
}

/// The quotas of one user component (a named user or the default user), looked up by
/// `&str` without allocating.
#[derive(Debug, Clone, PartialEq, Default)]
struct UserQuotas {
    /// The user alone.
    alone: Option<u64>,
    /// The user with the default client id.
    default_client: Option<u64>,
    /// The user with a named client id.
    clients: HashMap<String, u64>,
}

impl UserQuotas {
    fn is_empty(&self) -> bool {
        self.alone.is_none() && self.default_client.is_none() && self.clients.is_empty()
    }

    /// The most specific of its quotas for `client_id`, and whether it names a client.
    fn rate(&self, client_id: &str) -> Option<(u64, bool)> {
        let with_client = self.clients.get(client_id).copied().or(self.default_client);
        with_client
            .map(|r| (r, true))
            .or(self.alone.map(|r| (r, false)))
    }

    fn slot(&mut self, client_id: &Option<Option<String>>) -> Option<&mut Option<u64>> {
        match client_id {
            None => Some(&mut self.alone),
            Some(None) => Some(&mut self.default_client),
            Some(Some(_)) => None,
        }
    }

    fn entries(&self, user: Option<String>) -> impl Iterator<Item = (QuotaEntity, u64)> + '_ {
        let entity = move |client_id| QuotaEntity {
            user: Some(user.clone()),
            client_id,
        };
        let named = self
            .clients
            .iter()
            .map(move |(c, r)| (Some(Some(c.clone())), *r));
        let fixed = [(None, self.alone), (Some(None), self.default_client)];
        let fixed = fixed.into_iter().filter_map(|(c, r)| Some((c, r?)));
        fixed.chain(named).map(move |(c, r)| (entity(c), r))
    }
}

pub fn quotas_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("client-quotas-v2.state")
}

/// The client-id-only quota file of earlier versions.
pub fn legacy_quotas_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("client-quotas.state")
}

/// The quota that applies to a connection, and the key its bytes are measured under:
/// every connection of the entity's actual user and/or client id shares one measure
/// (as Kafka's quota sensors are tagged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'a> {
    pub bytes_per_s: u64,
    pub key: Cow<'a, str>,
}

impl ClientQuotas {
    pub fn from_record(r: &QuotaRecord) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        for (entity, rate) in &r.producer_byte_rate {
            q.apply(&QuotaChange {
                entity: entity.clone(),
                producer_byte_rate: Some(*rate),
            });
        }
        q
    }

    pub fn to_record(&self) -> QuotaRecord {
        QuotaRecord {
            producer_byte_rate: self.entries(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
            && self.default_client.is_none()
            && self.users.is_empty()
            && self.default_user.is_empty()
    }

    /// The quota of a connection of `user` (the principal's name) with `client_id`, by
    /// Kafka's precedence (module doc); None: none is set (the broker-wide setting).
    pub fn producer_byte_rate<'a>(&self, user: &str, client_id: &'a str) -> Option<Applied<'a>> {
        if let Some(a) = self.user_rate(user, client_id) {
            return Some(a);
        }
        let rate = self
            .by_client
            .get(client_id)
            .copied()
            .or(self.default_client)?;
        Some(Applied {
            bytes_per_s: rate,
            key: Cow::Borrowed(client_id),
        })
    }

    /// A named user's quotas, then the default user's (Kafka's precedence, 1–6).
    fn user_rate(&self, user: &str, client_id: &str) -> Option<Applied<'static>> {
        let (rate, with_client) = self
            .users
            .get(user)
            .and_then(|u| u.rate(client_id))
            .or_else(|| self.default_user.rate(client_id))?;
        let client = if with_client { client_id } else { "" };
        Some(Applied {
            bytes_per_s: rate,
            key: Cow::Owned(format!("\u{1}{user}\u{0}{client}")),
        })
    }

    /// Every entity with its producer byte rate, sorted.
    pub fn entries(&self) -> Vec<(QuotaEntity, u64)> {
        let clients = self
            .by_client
            .iter()
            .map(|(c, r)| (QuotaEntity::client(Some(c.clone())), *r));
        let default = self.default_client.map(|r| (QuotaEntity::client(None), r));
        let named = self
            .users
            .iter()
            .flat_map(|(u, q)| q.entries(Some(u.clone())));
        let users = named.chain(self.default_user.entries(None));
        let mut all: Vec<_> = clients.chain(default).chain(users).collect();
        all.sort();
        all
    }

    /// These quotas with `change` made.
    #[cfg(test)]
    pub fn with(&self, change: &QuotaChange) -> ClientQuotas {
        let mut next = self.clone();
        next.apply(change);
        next
    }

    /// Make `change` in place.
    pub fn apply(&mut self, change: &QuotaChange) {
        let rate = change.producer_byte_rate;
        match &change.entity {
            QuotaEntity {
                user: None,
                client_id: Some(None),
            } => self.default_client = rate,
            QuotaEntity {
                user: None,
                client_id: Some(Some(c)),
            } => match rate {
                Some(r) => {
                    self.by_client.insert(c.clone(), r);
                }
                None => {
                    self.by_client.remove(c);
                }
            },
            QuotaEntity {
                user: None,
                client_id: None,
            } => {}
            QuotaEntity {
                user: Some(user),
                client_id,
            } => self.apply_user(user, client_id, rate),
        }
    }

    fn apply_user(
        &mut self,
        user: &Option<String>,
        client_id: &Option<Option<String>>,
        rate: Option<u64>,
    ) {
        let q = match user {
            Some(u) => self.users.entry(u.clone()).or_default(),
            None => &mut self.default_user,
        };
        match (q.slot(client_id), client_id) {
            (Some(slot), _) => *slot = rate,
            (None, Some(Some(c))) => match rate {
                Some(r) => {
                    q.clients.insert(c.clone(), r);
                }
                None => {
                    q.clients.remove(c);
                }
            },
            (None, _) => {}
        }
        if let Some(u) = user.as_ref().filter(|_| q.is_empty()) {
            self.users.remove(u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(
        user: Option<Option<&str>>,
        client: Option<Option<&str>>,
        r: Option<u64>,
    ) -> QuotaChange {
        let own = |o: Option<Option<&str>>| o.map(|n| n.map(str::to_string));
        QuotaChange {
            entity: QuotaEntity {
                user: own(user),
                client_id: own(client),
            },
            producer_byte_rate: r,
        }
    }

    fn rate(q: &ClientQuotas, user: &str, client: &str) -> Option<(u64, String)> {
        q.producer_byte_rate(user, client)
            .map(|a| (a.bytes_per_s, a.key.into_owned()))
    }

    #[test]
    fn a_client_id_quota_wins_over_the_default_and_removal_restores_it() {
        let q = ClientQuotas::default()
            .with(&set(None, Some(None), Some(1000)))
            .with(&set(None, Some(Some("a")), Some(50)));
        assert_eq!(rate(&q, "u", "a"), Some((50, "a".into())));
        assert_eq!(rate(&q, "u", "b"), Some((1000, "b".into())));
        let q = q.with(&set(None, Some(Some("a")), None));
        assert_eq!(rate(&q, "u", "a").map(|r| r.0), Some(1000));
        assert_eq!(ClientQuotas::from_record(&q.to_record()), q);
        assert_eq!(
            q.with(&set(None, Some(None), None))
                .producer_byte_rate("u", "a"),
            None
        );
    }

    #[test]
    fn user_quotas_follow_kafkas_precedence_and_share_one_measure_per_user() {
        let q = ClientQuotas::default()
            .with(&set(None, Some(Some("app")), Some(1)))
            .with(&set(Some(None), None, Some(2)))
            .with(&set(Some(Some("alice")), None, Some(3)))
            .with(&set(Some(Some("alice")), Some(Some("app")), Some(4)));
        // alice's app: the most specific; alice's other clients share her user quota.
        assert_eq!(rate(&q, "alice", "app").unwrap().0, 4);
        let (r, key) = rate(&q, "alice", "cli").unwrap();
        assert_eq!((r, key.clone()), (3, rate(&q, "alice", "other").unwrap().1));
        // bob falls to the default user (his own measure), before the client id's.
        let (r, bob_key) = rate(&q, "bob", "app").unwrap();
        assert_eq!(r, 2);
        assert_ne!(bob_key, key);
        assert_ne!(bob_key, rate(&q, "carol", "app").unwrap().1);
        let q = q.with(&set(Some(None), None, None));
        assert_eq!(rate(&q, "bob", "app"), Some((1, "app".into())));
        assert_eq!(ClientQuotas::from_record(&q.to_record()), q);
        let legacy = LegacyQuotaRecord {
            producer_byte_rate: vec![(None, 7), (Some("x".into()), 8)],
        };
        let q = ClientQuotas::from_record(&legacy.into());
        assert_eq!(
            (rate(&q, "u", "x").unwrap().0, rate(&q, "u", "y").unwrap().0),
            (8, 7)
        );
    }
}
