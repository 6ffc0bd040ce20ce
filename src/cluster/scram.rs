//! SCRAM credentials (RFC 5802/7677, KIP-554): per user and mechanism the salt, the
//! iteration count and the two keys derived from the salted password (StoredKey and
//! ServerKey, RFC 5802 §3) — never the password nor the salted password. Like the
//! client quotas, an immutable snapshot changed only by the controller, saved with
//! `store::atomic` (`<data-dir>/meta/scram-credentials.state`) and installed on every
//! shard, where SASL authentication reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::{digest, hmac, pbkdf2};
use rkyv::{Archive, Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The SCRAM mechanisms, with Kafka's numbers (AlterUserScramCredentials' `mechanism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Sha256 = 1,
    Sha512 = 2,
}

/// Kafka's bounds on iterations (ScramMechanism.minIterations; 16384 is its maximum).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl Mechanism {
    pub fn from_kafka(n: i8) -> Option<Mechanism> {
        match n {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// Hi(password, salt, iterations): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let alg = match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        };
        let mut out = vec![0u8; self.digest_len()];
        let iterations = std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1");
        pbkdf2::derive(alg, iterations, salt, password, &mut out);
        out
    }
}

/// One user's credential for one mechanism.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Credential {
    /// The credential of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted(m: Mechanism, salt: &[u8], iterations: u32, salted: &[u8]) -> Credential {
        let client_key = m.hmac(salted, b"Client Key");
        Credential {
            salt: salt.to_vec(),
            iterations,
            stored_key: m.hash(&client_key),
            server_key: m.hmac(salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (SASL PLAIN).
    pub fn matches_password(&self, m: Mechanism, password: &[u8]) -> bool {
        let salted = m.salted_password(password, &self.salt, self.iterations);
        let other = Credential::from_salted(m, &self.salt, self.iterations, &salted);
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }
}

/// What `<data-dir>/meta/scram-credentials.state` holds: (user, mechanism number,
/// credential), sorted.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ScramRecord {
    pub credentials: Vec<(String, u8, Credential)>,
}

/// One change of AlterUserScramCredentials.
#[derive(Debug, Clone, PartialEq)]
pub enum ScramChange {
    Upsert {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    Delete {
        user: String,
        mechanism: Mechanism,
    },
}

/// Every shard's view of the SCRAM users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScramUsers {
    by_user: BTreeMap<(String, Mechanism), Credential>,
}

pub fn scram_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("scram-credentials.state")
}

impl ScramUsers {
    pub fn from_record(r: &ScramRecord) -> ScramUsers {
        let by_user = r
            .credentials
            .iter()
            .filter_map(|(u, m, c)| {
                let m = Mechanism::from_kafka(*m as i8)?;
                Some(((u.clone(), m), c.clone()))
            })
            .collect();
        ScramUsers { by_user }
    }

    pub fn to_record(&self) -> ScramRecord {
        ScramRecord {
            credentials: self
                .by_user
                .iter()
                .map(|((u, m), c)| (u.clone(), *m as u8, c.clone()))
                .collect(),
        }
    }

    pub fn get(&self, user: &str, m: Mechanism) -> Option<&Credential> {
        self.by_user.get(&(user.to_string(), m))
    }

    /// Every user with the mechanisms and iterations of their credentials.
    pub fn users(&self) -> BTreeMap<&str, Vec<(Mechanism, u32)>> {
        let mut out: BTreeMap<&str, Vec<(Mechanism, u32)>> = BTreeMap::new();
        for ((u, m), c) in &self.by_user {
            out.entry(u.as_str()).or_default().push((*m, c.iterations));
        }
        out
    }

    /// Make `change`; false when it deletes what is not there.
    pub fn apply(&mut self, change: &ScramChange) -> bool {
        match change {
            ScramChange::Upsert {
                user,
                mechanism,
                credential,
            } => {
                self.by_user
                    .insert((user.clone(), *mechanism), credential.clone());
                true
            }
            ScramChange::Delete { user, mechanism } => {
                self.by_user.remove(&(user.clone(), *mechanism)).is_some()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example: user "user", password "pencil", salt
    /// W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations, SCRAM-SHA-256.
    #[test]
    fn derives_rfc_7677_keys_and_checks_passwords() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let m = Mechanism::Sha256;
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let c = Credential::from_salted(m, &salt, 4096, &salted);
        // The server signature of the RFC's exchange comes from this ServerKey.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = m.hmac(&c.server_key, auth.as_bytes());
        assert_eq!(
            b64.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(c.matches_password(m, b"pencil"));
        assert!(!c.matches_password(m, b"pencil2"));
        let mut users = ScramUsers::default();
        users.apply(&ScramChange::Upsert {
            user: "user".into(),
            mechanism: m,
            credential: c.clone(),
        });
        assert_eq!(ScramUsers::from_record(&users.to_record()), users);
        assert!(users.apply(&ScramChange::Delete {
            user: "user".into(),
            mechanism: m
        }));
        assert!(users.get("user", m).is_none());
    }
}
