//! The server side of SCRAM (RFC 5802, SCRAM-SHA-256 / -512 of RFC 7677): two
//! client messages, two answers. Without channel binding (`n,,` or `y,,`), as Kafka.
//! An unknown user gets a made-up salt and the same iteration count, and fails only at
//! the proof, so the exchange does not tell whether the user exists.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::cluster::scram::{Credential, Mechanism, MIN_ITERATIONS};
use crate::cluster::ScramUsers;

/// Where the exchange is after the client's first message.
pub struct ServerFirst {
    mechanism: Mechanism,
    user: String,
    credential: Option<Credential>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
}

/// Why an exchange failed: a client mistake (malformed), or wrong credentials. Both
/// reach the client as the same generic failure.
#[derive(Debug)]
pub struct Failed(pub String);

/// `saslname` of RFC 5802 §5.1: "=2C" is ',' and "=3D" is '='; any other '=' is bad.
fn decode_name(s: &str) -> Result<String, Failed> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(Failed(format!("bad username encoding in {s:?}"))),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `key` (`k=value`) in a comma-separated message.
fn attr<'a>(parts: &[&'a str], key: char) -> Option<&'a str> {
    parts
        .iter()
        .find_map(|p| p.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Handle `client-first-message`; the `server-first-message` to send.
pub fn first(
    mechanism: Mechanism,
    users: &ScramUsers,
    msg: &[u8],
) -> Result<(ServerFirst, Vec<u8>), Failed> {
    let msg = std::str::from_utf8(msg).map_err(|_| Failed("client-first is not UTF-8".into()))?;
    let mut it = msg.splitn(3, ',');
    let (cbind, authzid, bare) = match (it.next(), it.next(), it.next()) {
        (Some(c), Some(a), Some(b)) => (c, a, b),
        _ => return Err(Failed("malformed client-first message".into())),
    };
    if cbind != "n" && cbind != "y" {
        return Err(Failed("channel binding is not supported".into()));
    }
    let fields: Vec<&str> = bare.split(',').collect();
    if fields.first().is_some_and(|f| f.starts_with("m=")) {
        return Err(Failed(
            "mandatory SCRAM extensions are not supported".into(),
        ));
    }
    let user = decode_name(attr(&fields, 'n').ok_or(Failed("no username".into()))?)?;
    let client_nonce = attr(&fields, 'r').ok_or(Failed("no nonce".into()))?;
    if client_nonce.is_empty()
        || !client_nonce
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(Failed("bad client nonce".into()));
    }
    if let Some(a) = authzid.strip_prefix("a=") {
        if decode_name(a)? != user {
            return Err(Failed("authorization id differs from the user".into()));
        }
    }
    if attr(&fields, 't').is_some() || bare.contains("tokenauth=true") {
        return Err(Failed("delegation tokens are not supported".into()));
    }
    let credential = users.get(&user, mechanism).cloned();
    let (salt, iterations) = match &credential {
        Some(c) => (c.salt.clone(), c.iterations),
        None => (
            mechanism.hmac(b"sluice unknown user", user.as_bytes()),
            MIN_ITERATIONS as u32,
        ),
    };
    let nonce = format!("{client_nonce}{}", server_nonce());
    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
    let state = ServerFirst {
        mechanism,
        user,
        credential,
        client_first_bare: bare.to_string(),
        server_first: server_first.clone(),
        nonce,
        gs2_header: format!("{cbind},{authzid},"),
    };
    Ok((state, server_first.into_bytes()))
}

fn server_nonce() -> String {
    let mut bytes = [0u8; 24];
    // The system RNG failing is not something to go on without.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator failed");
    B64.encode(bytes)
}

impl ServerFirst {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Handle `client-final-message`; the `server-final-message` when the proof holds.
    pub fn finish(self, msg: &[u8]) -> Result<Vec<u8>, Failed> {
        let msg =
            std::str::from_utf8(msg).map_err(|_| Failed("client-final is not UTF-8".into()))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(Failed("client-final has no proof".into()))?;
        let fields: Vec<&str> = without_proof.split(',').collect();
        let binding = attr(&fields, 'c').ok_or(Failed("no channel binding".into()))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(Failed("channel binding does not match".into()));
        }
        // Kafka checks that the nonce ends with the server's (librdkafka 2.0 sends the
        // client nonce in front of the whole server nonce): so does Sluice.
        if !attr(&fields, 'r').is_some_and(|r| r.ends_with(self.nonce.as_str())) {
            return Err(Failed("nonce does not match".into()));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| Failed("proof is not base64".into()))?;
        let m = self.mechanism;
        let Some(c) = self.credential else {
            return Err(Failed(format!("unknown user {:?}", self.user)));
        };
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = m.hmac(&c.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(Failed("proof has the wrong length".into()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(m.hash(&client_key).ct_eq(&c.stored_key)) {
            return Err(Failed(format!("wrong password for user {:?}", self.user)));
        }
        let server_signature = m.hmac(&c.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ScramChange;

    fn users(m: Mechanism, password: &[u8]) -> ScramUsers {
        let salt = b"0123456789abcdef";
        let salted = m.salted_password(password, salt, 4096);
        let mut u = ScramUsers::default();
        u.apply(&ScramChange::Upsert {
            user: "al,ice".into(),
            mechanism: m,
            credential: Credential::from_salted(m, salt, 4096, &salted),
        });
        u
    }

    /// A client side as RFC 5802 §3 computes it.
    fn client_final(m: Mechanism, password: &[u8], first_bare: &str, server_first: &str) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = attr(&fields, 'r').unwrap();
        let salt = B64.decode(attr(&fields, 's').unwrap()).unwrap();
        let i: u32 = attr(&fields, 'i').unwrap().parse().unwrap();
        let salted = m.salted_password(password, &salt, i);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let without = format!("c=biws,r={nonce}");
        let auth = format!("{first_bare},{server_first},{without}");
        let sig = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without},p={}", B64.encode(proof))
    }

    #[test]
    fn the_right_password_passes_and_others_fail_alike() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            let u = users(m, b"secret");
            let bare = "n=al=2Cice,r=abcdefgh";
            for (password, user_ok, ok) in [
                (&b"secret"[..], true, true),
                (b"wrong", true, false),
                (b"secret", false, false),
            ] {
                let bare = if user_ok { bare } else { "n=bob,r=abcdefgh" };
                let (state, sf) = first(m, &u, format!("n,,{bare}").as_bytes()).unwrap();
                let sf = String::from_utf8(sf).unwrap();
                assert!(
                    sf.starts_with("r=abcdefgh") && sf.ends_with(",i=4096"),
                    "{sf}"
                );
                let cf = client_final(m, password, bare, &sf);
                assert_eq!(state.finish(cf.as_bytes()).is_ok(), ok, "{m:?} {user_ok}");
            }
        }
    }

    #[test]
    fn malformed_messages_fail() {
        let u = users(Mechanism::Sha256, b"x");
        for bad in [
            &b"p=tls-unique,,n=a,r=b"[..],
            b"n,,r=abc",
            b"n,,n=a=ZZ,r=abc",
            b"n,,m=ext,n=a,r=b",
            b"\xff",
            b"n,",
        ] {
            assert!(first(Mechanism::Sha256, &u, bad).is_err(), "{bad:?}");
        }
        let (state, _) = first(Mechanism::Sha256, &u, b"n,,n=al=2Cice,r=abc").unwrap();
        assert!(state.finish(b"c=biws,r=other,p=AAAA").is_err());
    }
}
