//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554). The client
//! sends the salted password (never the password); the controller keeps the keys
//! derived from it (`cluster::scram`), saves them and installs them on every shard.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::cluster::ScramChange;
use crate::kafka::{ErrorCode, KafkaError};
use crate::protocol::authorized::{Authz, ALTER, DESCRIBE};
use crate::protocol::context::Context;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn describe_user_scram_credentials(
    ctx: &Context,
    az: &Authz<'_>,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    if let Err(e) = az.cluster(DESCRIBE) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.wire_code())
            .with_error_message(Some(text(e.message())));
    }
    let users = ctx.cluster.scram();
    let all = users.users();
    let asked: Vec<String> = match &req.users {
        Some(u) if !u.is_empty() => u.iter().map(|n| n.name.to_string()).collect(),
        _ => all.keys().map(|k| k.to_string()).collect(),
    };
    let mut seen = BTreeMap::new();
    for a in &asked {
        *seen.entry(a.as_str()).or_insert(0) += 1;
    }
    let results = asked
        .iter()
        .filter({
            let mut done = BTreeSet::new();
            move |a| done.insert(a.as_str())
        })
        .map(|user| {
            let r = DescribeUserScramCredentialsResult::default().with_user(text(user));
            if seen[user.as_str()] > 1 {
                return r
                    .with_error_code(ErrorCode::DuplicateResource as i16)
                    .with_error_message(Some(text(
                    "Cannot describe SCRAM credentials for the same user twice in a single request",
                )));
            }
            match all.get(user.as_str()) {
                Some(creds) => r.with_credential_infos(
                    creds
                        .iter()
                        .map(|(m, i)| {
                            CredentialInfo::default()
                                .with_mechanism(*m as i8)
                                .with_iterations(*i as i32)
                        })
                        .collect(),
                ),
                None => r
                    .with_error_code(ErrorCode::ResourceNotFound as i16)
                    .with_error_message(Some(text(
                        "Attempt to describe a user credential that does not exist",
                    ))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter_user_scram_credentials(
    ctx: &Context,
    az: &Authz<'_>,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    // One result per user, in the order they first appear; a user named twice fails.
    let mut order: Vec<String> = Vec::new();
    let mut planned: BTreeMap<String, Result<Vec<ScramChange>, KafkaError>> = BTreeMap::new();
    let mut count: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let deletions = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None));
    let upsertions = req
        .upsertions
        .iter()
        .map(|u| (u.name.to_string(), u.mechanism, Some(u)));
    for (user, mechanism, upsert) in deletions.chain(upsertions) {
        if !planned.contains_key(&user) {
            order.push(user.clone());
            planned.insert(user.clone(), Ok(Vec::new()));
        }
        *count.entry((user.clone(), mechanism)).or_default() += 1;
        let change = plan(&user, mechanism, upsert);
        let slot = planned.get_mut(&user).expect("inserted above");
        match (slot.as_mut(), change) {
            (Ok(list), Ok(c)) => list.push(c),
            (Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }
    if let Err(e) = az.cluster(ALTER) {
        planned.values_mut().for_each(|p| *p = Err(e.clone()));
    }
    for ((user, _), n) in count {
        if n > 1 {
            planned.insert(
                user,
                Err(KafkaError::new(
                    ErrorCode::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                )),
            );
        }
    }
    let changes: Vec<(String, ScramChange)> = order
        .iter()
        .filter_map(|u| planned[u].as_ref().ok().map(|l| (u, l)))
        .flat_map(|(u, l)| l.iter().map(move |c| (u.clone(), c.clone())))
        .collect();
    let applied = if changes.is_empty() {
        Vec::new()
    } else {
        ctx.cluster
            .alter_scram(changes.iter().map(|(_, c)| c.clone()).collect())
            .await
    };
    for ((user, _), r) in changes.iter().zip(applied) {
        if let (Err(e), Some(Ok(_))) = (r, planned.get(user)) {
            planned.insert(user.clone(), Err(e));
        }
    }
    let results = order
        .iter()
        .map(|user| {
            let r = AlterUserScramCredentialsResult::default().with_user(text(user));
            match &planned[user] {
                Ok(_) => r,
                Err(e) => r
                    .with_error_code(e.wire_code())
                    .with_error_message(Some(text(e.message()))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// The change one deletion (`upsert` None) or upsertion asks for, or why it is refused.
fn plan(
    user: &str,
    mechanism: i8,
    upsert: Option<
        &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
    >,
) -> Result<ScramChange, KafkaError> {
    if user.is_empty() {
        return Err(KafkaError::new(
            ErrorCode::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    let m = Mechanism::from_kafka(mechanism).ok_or_else(|| {
        KafkaError::new(
            ErrorCode::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })?;
    let Some(u) = upsert else {
        return Ok(ScramChange::Delete {
            user: user.to_string(),
            mechanism: m,
        });
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
        return Err(KafkaError::new(
            ErrorCode::UnacceptableCredential,
            format!("Iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"),
        ));
    }
    if u.salt.is_empty() || u.salted_password.len() != m.digest_len() {
        return Err(KafkaError::new(
            ErrorCode::UnacceptableCredential,
            "Salt must not be empty and the salted password must be one digest long",
        ));
    }
    Ok(ScramChange::Upsert {
        user: user.to_string(),
        mechanism: m,
        credential: Credential::from_salted(m, &u.salt, u.iterations as u32, &u.salted_password),
    })
}
