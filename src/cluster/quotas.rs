//! Client quotas (KIP-546's DescribeClientQuotas / AlterClientQuotas over KIP-13's
//! byte-rate quotas): `producer_byte_rate` per client id, or for the default client
//! id, on top of the broker-wide `producer_byte_rate` of the config. Like the registry,
//! an immutable snapshot changed only by the controller, saved with `store::atomic`
//! (`<data-dir>/meta/client-quotas.state`) and installed on every shard, where each
//! connection's produce is measured against it (`net::quota`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

/// The quota keys Sluice enforces (Kafka's names).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";

/// What `<data-dir>/meta/client-quotas.state` holds: (client id, None for the default
/// client id; producer bytes per second), sorted.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct QuotaRecord {
    pub producer_byte_rate: Vec<(Option<String>, u64)>,
}

/// One change: set (`Some`) or remove (`None`) the producer byte rate of a client id
/// entity (`None`: the default client id).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaChange {
    pub client_id: Option<String>,
    pub producer_byte_rate: Option<u64>,
}

/// Every shard's view of the client quotas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientQuotas {
    /// By client id (looked up by `&str` on every produce request, without allocating).
    by_client: BTreeMap<String, u64>,
    /// The default client id's.
    default: Option<u64>,
}

pub fn quotas_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("client-quotas.state")
}

impl ClientQuotas {
    pub fn from_record(r: &QuotaRecord) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        for (client_id, rate) in &r.producer_byte_rate {
            q.apply(&QuotaChange {
                client_id: client_id.clone(),
                producer_byte_rate: Some(*rate),
            });
        }
        q
    }

    pub fn to_record(&self) -> QuotaRecord {
        QuotaRecord {
            producer_byte_rate: self.entries().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty() && self.default.is_none()
    }

    /// The quota of `client_id`: its own, else the default client id's (Kafka's
    /// precedence for client-id entities), else None (the broker-wide setting).
    pub fn producer_byte_rate(&self, client_id: &str) -> Option<u64> {
        self.by_client.get(client_id).copied().or(self.default)
    }

    /// Every (client id entity, None for the default; producer byte rate), the default
    /// first.
    pub fn entries(&self) -> impl Iterator<Item = (Option<String>, u64)> + '_ {
        let default = self.default.map(|r| (None, r));
        default
            .into_iter()
            .chain(self.by_client.iter().map(|(k, v)| (Some(k.clone()), *v)))
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
        match (&change.client_id, change.producer_byte_rate) {
            (None, rate) => self.default = rate,
            (Some(c), Some(rate)) => {
                self.by_client.insert(c.clone(), rate);
            }
            (Some(c), None) => {
                self.by_client.remove(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_quota_wins_over_the_default_and_removal_restores_it() {
        let set = |c: Option<&str>, r| QuotaChange {
            client_id: c.map(str::to_string),
            producer_byte_rate: r,
        };
        let q = ClientQuotas::default()
            .with(&set(None, Some(1000)))
            .with(&set(Some("a"), Some(50)));
        assert_eq!(q.producer_byte_rate("a"), Some(50));
        assert_eq!(q.producer_byte_rate("b"), Some(1000));
        let q = q.with(&set(Some("a"), None));
        assert_eq!(q.producer_byte_rate("a"), Some(1000));
        assert_eq!(ClientQuotas::from_record(&q.to_record()), q);
        assert_eq!(q.with(&set(None, None)).producer_byte_rate("a"), None);
    }
}
