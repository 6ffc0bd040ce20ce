//! SASL on the SASL_PLAINTEXT and SASL_SSL listeners (KIP-43, KIP-152): a connection
//! must authenticate before any request but ApiVersions, with SaslHandshake then
//! SaslAuthenticate requests (v1 handshake), or raw tokens after a v0 handshake.
//! Mechanisms: PLAIN and SCRAM-SHA-256/512, both checked against the SCRAM
//! credentials of `cluster::scram` (PLAIN derives the stored key from the password
//! with the credential's own salt and iterations). `net/connection.rs` holds one
//! `Authenticator` per connection and hands it the frames until it is done.
//!
//! A failure answers SASL_AUTHENTICATION_FAILED with one generic message whatever went
//! wrong (no hint whether the user exists), and the connection closes.

pub mod credentials;
pub mod scram;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::frame::{decode, encode_frame, peek_start};
use crate::cluster::scram::{Mechanism, MIN_ITERATIONS};
use crate::cluster::ScramUsers;
use crate::kafka::ErrorCode;

/// The mechanisms Sluice offers, in the order SaslHandshake lists them.
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

#[derive(Clone, Copy, Debug)]
enum Mech {
    Plain,
    Scram(Mechanism),
}

impl Mech {
    fn parse(name: &str) -> Option<Mech> {
        match name {
            "PLAIN" => Some(Mech::Plain),
            n => Mechanism::from_name(n).map(Mech::Scram),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::Scram(m) => m.name(),
        }
    }
}

enum State {
    Start,
    Chosen(Mech),
    ScramFirst(Box<scram::ServerFirst>),
}

/// One connection's authentication.
pub struct Authenticator {
    state: State,
    /// A v0 handshake: the tokens come as raw frames, not SaslAuthenticate requests.
    raw: bool,
    /// What a successful SaslAuthenticate v1+ tells the client its session lasts
    /// (KIP-368); 0: no limit.
    session_lifetime_ms: i64,
}

/// What the connection does with a frame.
pub enum Step {
    /// Not for the authenticator (ApiVersions): serve it as usual.
    PassThrough,
    /// Send this and wait for the client's next frame.
    Reply(BytesMut),
    /// Send this; the connection is `user`'s from now on.
    Done { reply: BytesMut, user: String },
    /// Send `reply` (if any), then close. `reason` is for the log only.
    Fail {
        reply: Option<BytesMut>,
        reason: String,
    },
}

fn fail(reply: Option<BytesMut>, reason: impl Into<String>) -> Step {
    Step::Fail {
        reply,
        reason: reason.into(),
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::with_session_lifetime(0)
    }
}

/// The one message a failed authentication gets (Kafka's wording).
fn generic_failure(m: Mech) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        m.name()
    )
}

impl Authenticator {
    /// An authenticator whose sessions last `ms` (0: forever).
    pub fn with_session_lifetime(ms: u64) -> Authenticator {
        Authenticator {
            state: State::Start,
            raw: false,
            session_lifetime_ms: i64::try_from(ms).unwrap_or(i64::MAX),
        }
    }

    /// Handle one frame of a connection that has not authenticated yet.
    pub fn handle(&mut self, users: &ScramUsers, frame: Bytes) -> Step {
        if self.raw {
            return self.raw_token(users, frame);
        }
        let start = match peek_start(&frame) {
            Ok(s) => s,
            Err(e) => return fail(None, e.0),
        };
        match ApiKey::try_from(start.api_key) {
            Ok(ApiKey::ApiVersions) => Step::PassThrough,
            Ok(ApiKey::SaslHandshake) => self.handshake(frame),
            Ok(ApiKey::SaslAuthenticate) => self.authenticate(users, frame),
            _ => fail(
                None,
                format!(
                    "request (API key {}) before SASL authentication",
                    start.api_key
                ),
            ),
        }
    }

    fn handshake(&mut self, mut frame: Bytes) -> Step {
        let (version, cid, req) =
            match read::<SaslHandshakeRequest>(ApiKey::SaslHandshake, &mut frame) {
                Ok(r) => r,
                Err(e) => return fail(None, e),
            };
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(
            MECHANISMS
                .iter()
                .map(|m| StrBytes::from_static_str(m))
                .collect(),
        );
        let chosen = Mech::parse(&req.mechanism);
        let error = match (&self.state, chosen) {
            (State::Start, Some(m)) => {
                self.state = State::Chosen(m);
                self.raw = version == 0;
                None
            }
            (State::Start, None) => Some((
                ErrorCode::UnsupportedSaslMechanism,
                format!("unsupported SASL mechanism {:?}", req.mechanism.as_str()),
            )),
            _ => Some((ErrorCode::IllegalSaslState, "a second SaslHandshake".into())),
        };
        if let Some((code, _)) = &error {
            resp = resp.with_error_code(*code as i16);
        }
        let reply = match encode_frame(ApiKey::SaslHandshake, version, cid, &resp) {
            Ok(r) => r,
            Err(e) => return fail(None, e.0),
        };
        match error {
            None => Step::Reply(reply),
            Some((_, reason)) => fail(Some(reply), reason),
        }
    }

    fn authenticate(&mut self, users: &ScramUsers, mut frame: Bytes) -> Step {
        let (version, cid, req) =
            match read::<SaslAuthenticateRequest>(ApiKey::SaslAuthenticate, &mut frame) {
                Ok(r) => r,
                Err(e) => return fail(None, e),
            };
        let answer = |resp: SaslAuthenticateResponse| {
            encode_frame(ApiKey::SaslAuthenticate, version, cid, &resp).map_err(|e| e.0)
        };
        let mech = match &self.state {
            State::Start => {
                let resp = SaslAuthenticateResponse::default()
                    .with_error_code(ErrorCode::IllegalSaslState as i16)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    )));
                return fail(answer(resp).ok(), "SaslAuthenticate before SaslHandshake");
            }
            State::Chosen(m) => *m,
            State::ScramFirst(s) => Mech::Scram(s.mechanism()),
        };
        match self.step(users, &req.auth_bytes) {
            Ok((token, user)) => {
                let mut resp = SaslAuthenticateResponse::default().with_auth_bytes(token.into());
                if user.is_some() && version >= 1 {
                    resp = resp.with_session_lifetime_ms(self.session_lifetime_ms);
                }
                match (answer(resp), user) {
                    (Ok(reply), Some(user)) => Step::Done { reply, user },
                    (Ok(reply), None) => Step::Reply(reply),
                    (Err(e), _) => fail(None, e),
                }
            }
            Err(reason) => {
                let resp = SaslAuthenticateResponse::default()
                    .with_error_code(ErrorCode::SaslAuthenticationFailed as i16)
                    .with_error_message(Some(StrBytes::from_string(generic_failure(mech))));
                fail(answer(resp).ok(), reason)
            }
        }
    }

    /// A raw token after a v0 handshake; the answer is a raw token too. A failure
    /// closes the connection without an answer (the v0 protocol has none).
    fn raw_token(&mut self, users: &ScramUsers, frame: Bytes) -> Step {
        match self.step(users, &frame) {
            Ok((token, user)) => {
                let mut reply = BytesMut::with_capacity(4 + token.len());
                reply.put_u32(token.len() as u32);
                reply.extend_from_slice(&token);
                match user {
                    Some(user) => Step::Done { reply, user },
                    None => Step::Reply(reply),
                }
            }
            Err(reason) => fail(None, reason),
        }
    }

    /// Take one client token: the token to answer, and the user once authenticated.
    fn step(
        &mut self,
        users: &ScramUsers,
        token: &[u8],
    ) -> Result<(Vec<u8>, Option<String>), String> {
        match std::mem::replace(&mut self.state, State::Start) {
            State::Start => Err("a token before SaslHandshake".into()),
            State::Chosen(Mech::Plain) => plain(users, token).map(|u| (Vec::new(), Some(u))),
            State::Chosen(Mech::Scram(m)) => {
                let (first, reply) = scram::first(m, users, token).map_err(|e| e.0)?;
                self.state = State::ScramFirst(Box::new(first));
                Ok((reply, None))
            }
            State::ScramFirst(first) => {
                let user = first.user().to_string();
                let reply = first.finish(token).map_err(|e| e.0)?;
                Ok((reply, Some(user)))
            }
        }
    }
}

/// SASL PLAIN (RFC 4616): `authzid NUL user NUL password`.
fn plain(users: &ScramUsers, token: &[u8]) -> Result<String, String> {
    let mut parts = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed PLAIN token".into());
    };
    let user = std::str::from_utf8(user).map_err(|_| "PLAIN user is not UTF-8")?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err("PLAIN authorization id differs from the user".into());
    }
    let found = [Mechanism::Sha512, Mechanism::Sha256]
        .into_iter()
        .find_map(|m| users.get(user, m).map(|c| (m, c)));
    match found {
        Some((m, c)) if c.matches_password(m, password) => Ok(user.to_string()),
        Some(_) => Err(format!("wrong password for user {user:?}")),
        None => {
            // As long as a known user's check, so the time does not tell.
            let _ = Mechanism::Sha512.salted_password(password, b"sluice", MIN_ITERATIONS as u32);
            Err(format!("unknown user {user:?}"))
        }
    }
}

/// Version, correlation id and body of a request frame.
fn read<T: Decodable>(key: ApiKey, frame: &mut Bytes) -> Result<(i16, i32, T), String> {
    let start = peek_start(frame).map_err(|e| e.0)?;
    let v = start.version;
    let (min, max) = super::api_versions::supported_range(key).unwrap_or((0, 0));
    if v < min || v > max {
        return Err(format!("{key:?} v{v} is not supported"));
    }
    RequestHeader::decode(frame, key.request_header_version(v))
        .map_err(|e| format!("malformed {key:?} request header: {e}"))?;
    let body = decode(key, frame, v).map_err(|e| e.0)?;
    Ok((v, start.correlation_id, body))
}
