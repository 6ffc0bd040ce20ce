//! `sluice user list|create|delete`: SCRAM users (KIP-554), against any broker that
//! serves Describe/AlterUserScramCredentials. The salted password is computed here
//! (PBKDF2 with a random 32-byte salt) and only it crosses the wire, as Kafka's
//! `kafka-configs.sh --alter --add-config SCRAM-SHA-512=[...]` does.

use clap::{Subcommand, ValueEnum};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use ring::rand::SecureRandom;
use serde_json::{json, Value};

use super::client::s;
use super::error::CliError;
use super::output::{emit, Table};
use super::Ctx;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    #[value(name = "SCRAM-SHA-256")]
    Sha256,
    #[value(name = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    /// Kafka's number for it (AlterUserScramCredentials' `mechanism`).
    fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    fn salted(self, password: &[u8], salt: &[u8], iterations: u32) -> Result<Vec<u8>, CliError> {
        let (alg, len) = match self {
            Mechanism::Sha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
            Mechanism::Sha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
        };
        let n = std::num::NonZeroU32::new(iterations)
            .ok_or_else(|| CliError::usage("--iterations must be at least 1"))?;
        let mut out = vec![0u8; len];
        ring::pbkdf2::derive(alg, n, salt, password, &mut out);
        Ok(out)
    }
}

fn mechanism_name(code: i8) -> &'static str {
    match code {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "UNKNOWN",
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Users and their SCRAM mechanisms (all, or those named).
    List { users: Vec<String> },
    /// Set a user's password for a mechanism (creating the user).
    Create {
        user: String,
        /// The password; default: read from the environment variable SLUICE_PASSWORD.
        #[arg(long, env = "SLUICE_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_enum, default_value = "SCRAM-SHA-512")]
        mechanism: Mechanism,
        /// PBKDF2 iterations (Kafka accepts 4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Remove a user's credential for one mechanism, or for every one it has.
    Delete {
        user: String,
        #[arg(long, value_enum)]
        mechanism: Option<Mechanism>,
    },
}

pub fn run(ctx: &Ctx, cmd: UserCmd) -> Result<(), CliError> {
    match cmd {
        UserCmd::List { users } => list(ctx, users),
        UserCmd::Create {
            user,
            password,
            mechanism,
            iterations,
        } => create(ctx, &user, &password, mechanism, iterations),
        UserCmd::Delete { user, mechanism } => delete(ctx, &user, mechanism),
    }
}

/// A user and its credentials: (mechanism code, iterations).
type UserCredentials = (String, Vec<(i8, i32)>);

/// The users asked (all when empty) with their credentials.
fn describe(ctx: &Ctx, users: &[String]) -> Result<Vec<UserCredentials>, CliError> {
    let mut c = ctx.client()?;
    let names = (!users.is_empty()).then(|| {
        users
            .iter()
            .map(|u| UserName::default().with_name(s(u)))
            .collect()
    });
    let req = DescribeUserScramCredentialsRequest::default().with_users(names);
    let resp = c.controller()?.call(&req, 0)?;
    if let Some(e) = CliError::kafka_opt(resp.error_code, resp.error_message.as_deref(), "users") {
        return Err(e);
    }
    let mut out = Vec::new();
    for r in resp.results {
        let what = format!("user {}", r.user.as_str());
        if let Some(e) = CliError::kafka_opt(r.error_code, r.error_message.as_deref(), &what) {
            return Err(e);
        }
        let creds = r
            .credential_infos
            .iter()
            .map(|i| (i.mechanism, i.iterations))
            .collect();
        out.push((r.user.to_string(), creds));
    }
    Ok(out)
}

fn list(ctx: &Ctx, users: Vec<String>) -> Result<(), CliError> {
    let found = describe(ctx, &users)?;
    let json = json!({"users": found.iter().map(|(u, creds)| json!({
        "user": u,
        "credentials": creds.iter().map(|(m, i)| json!({
            "mechanism": mechanism_name(*m), "iterations": i})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()});
    emit(ctx.format, &json, || {
        let mut t = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
        for (u, creds) in &found {
            for (m, i) in creds {
                t.row(vec![u.clone(), mechanism_name(*m).into(), i.to_string()]);
            }
        }
        t.render()
    });
    Ok(())
}

fn alter(ctx: &Ctx, req: AlterUserScramCredentialsRequest, user: &str) -> Result<(), CliError> {
    let mut c = ctx.client()?;
    let resp = c.controller()?.call(&req, 0)?;
    for r in resp.results {
        let what = format!("user {user}");
        if let Some(e) = CliError::kafka_opt(r.error_code, r.error_message.as_deref(), &what) {
            return Err(e);
        }
    }
    Ok(())
}

fn create(ctx: &Ctx, user: &str, password: &str, m: Mechanism, n: u32) -> Result<(), CliError> {
    let mut salt = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| CliError::other("no randomness for the salt"))?;
    let salted = m.salted(password.as_bytes(), &salt, n)?;
    let up = ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(m.code())
        .with_iterations(n as i32)
        .with_salt(salt.to_vec().into())
        .with_salted_password(salted.into());
    alter(
        ctx,
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]),
        user,
    )?;
    let v = json!({"user": user, "mechanism": mechanism_name(m.code()), "iterations": n});
    emit(ctx.format, &v, || {
        format!(
            "user {user}: {} set ({n} iterations)\n",
            mechanism_name(m.code())
        )
    });
    Ok(())
}

/// Without `--mechanism`, the user's own mechanisms are looked up first: the broker
/// answers a deletion per user, so one for a mechanism it lacks would fail the rest.
fn delete(ctx: &Ctx, user: &str, m: Option<Mechanism>) -> Result<(), CliError> {
    let codes: Vec<i8> = match m {
        Some(m) => vec![m.code()],
        None => describe(ctx, &[user.to_string()])?
            .into_iter()
            .flat_map(|(_, creds)| creds.into_iter().map(|(m, _)| m))
            .collect(),
    };
    let deletions = codes
        .iter()
        .map(|&m| {
            ScramCredentialDeletion::default()
                .with_name(s(user))
                .with_mechanism(m)
        })
        .collect();
    alter(
        ctx,
        AlterUserScramCredentialsRequest::default().with_deletions(deletions),
        user,
    )?;
    let names: Vec<Value> = codes.iter().map(|&m| json!(mechanism_name(m))).collect();
    let v = json!({"user": user, "deleted": names});
    emit(ctx.format, &v, || {
        format!("user {user}: deleted {}\n", v["deleted"])
    });
    Ok(())
}
