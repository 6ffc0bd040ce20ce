//! `sluice group list|describe|lag|reset-offsets|delete`: consumer groups (the classic
//! protocol and KIP-848), through their coordinator, without joining them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::{Args, Subcommand};
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use serde_json::{json, Value};

use super::client::{group_id, s, topic_name, Client, EARLIEST, LATEST};
use super::error::CliError;

/// A topic partition, by name.
type Tp = (String, i32);
/// One row of a reset plan: (partition, current, target, log start, end).
pub type PlanRow = (Tp, Option<i64>, i64, i64, i64);
use super::output::{emit, members_table, or_dash, Progress, Table};
use super::spec::{now_ms, parse_duration_ms, parse_time_ms, parse_topic_partitions};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List consumer groups (share groups: `sluice share-group list`).
    List,
    /// State, members and their assignments, committed offsets and lag per partition.
    Describe { group: String },
    /// Lag per partition of one group, or the total lag of every group.
    Lag { group: Option<String> },
    /// Move a group's committed offsets (the group must have no live members).
    ResetOffsets(ResetArgs),
    /// Delete groups and their committed offsets (they must have no live members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Where to move offsets to: exactly one of these.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// The first offset still in the log.
    #[arg(long)]
    pub to_earliest: bool,
    /// The end of the log (skip everything not yet consumed).
    #[arg(long)]
    pub to_latest: bool,
    /// Where the group is now (with --dry-run: show it).
    #[arg(long)]
    pub to_current: bool,
    /// This offset (clamped to the log's range).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Move by N (negative: back), from the committed offset.
    #[arg(long, allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// The first record at or after this time: RFC 3339 (2024-05-01T12:00:00Z) or ms.
    #[arg(long, alias = "to-timestamp")]
    pub to_datetime: Option<String>,
    /// The first record at or after now minus this (10m, 1h30m, PT2H).
    #[arg(long)]
    pub by_duration: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ResetArgs {
    pub group: String,
    /// Topic to reset, TOPIC or TOPIC:0,1,2 (repeat for more).
    #[arg(long = "topic", short = 't')]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    pub all_topics: bool,
    #[command(flatten)]
    pub to: ResetTo,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for kafka-consumer-groups.sh habits: without --dry-run, the reset runs.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
}

pub fn run(ctx: &Ctx, cmd: GroupCmd) -> Result<(), CliError> {
    let mut c = ctx.client()?;
    match cmd {
        GroupCmd::List => {
            let groups: Vec<_> = list_groups(&mut c)?
                .into_iter()
                .filter(|g| g.kind != "share")
                .collect();
            let json = json!({ "groups": groups.iter().map(|g| json!({
                "group": g.id, "type": g.kind, "protocol_type": g.protocol_type, "state": g.state,
            })).collect::<Vec<_>>() });
            emit(ctx.format, &json, || {
                let mut t = Table::new(&["GROUP", "TYPE", "STATE"]);
                for g in &groups {
                    t.row(vec![g.id.clone(), g.kind.clone(), g.state.clone()]);
                }
                t.render()
            });
            Ok(())
        }
        GroupCmd::Describe { group } => {
            let d = describe(&mut c, &group)?;
            emit(ctx.format, &d, || describe_text(&d, true));
            Ok(())
        }
        GroupCmd::Lag { group: Some(group) } => {
            let d = describe(&mut c, &group)?;
            let json =
                json!({ "group": group, "total_lag": d["total_lag"], "partitions": d["offsets"] });
            emit(ctx.format, &json, || describe_text(&d, false));
            Ok(())
        }
        GroupCmd::Lag { group: None } => {
            let mut rows = Vec::new();
            for g in list_groups(&mut c)?
                .into_iter()
                .filter(|g| g.kind != "share")
            {
                let d = describe(&mut c, &g.id)?;
                rows.push(json!({
                    "group": g.id, "state": d["state"], "members": d["members"].as_array().map_or(0, |m| m.len()),
                    "partitions": d["offsets"].as_array().map_or(0, |o| o.len()), "total_lag": d["total_lag"],
                }));
            }
            emit(ctx.format, &json!({ "groups": rows }), || {
                let mut t = Table::new(&["GROUP", "STATE", "MEMBERS", "PARTITIONS", "LAG"]);
                for r in &rows {
                    t.row(vec![
                        r["group"].as_str().unwrap_or("").into(),
                        r["state"].as_str().unwrap_or("").into(),
                        r["members"].to_string(),
                        r["partitions"].to_string(),
                        r["total_lag"].to_string(),
                    ]);
                }
                t.render()
            });
            Ok(())
        }
        GroupCmd::ResetOffsets(a) => reset(ctx, &mut c, a),
        GroupCmd::Delete { groups } => {
            let mut out = Vec::new();
            for g in &groups {
                let req =
                    DeleteGroupsRequest::default().with_groups_names(vec![group_id(g.clone())]);
                let resp = c.coordinator(g)?.call(&req, 2)?;
                for r in resp.results {
                    if let Some(e) =
                        CliError::kafka_opt(r.error_code, None, &format!("delete group {g}"))
                    {
                        return Err(e);
                    }
                }
                out.push(json!({ "group": g, "deleted": true }));
            }
            emit(ctx.format, &json!({ "groups": out }), || {
                groups
                    .iter()
                    .map(|g| format!("deleted group {g}\n"))
                    .collect()
            });
            Ok(())
        }
    }
}

pub struct Listed {
    pub id: String,
    pub kind: String,
    pub protocol_type: String,
    pub state: String,
}

/// Every group of every broker (ListGroups goes to each: a group lives on its coordinator).
pub fn list_groups(c: &mut Client) -> Result<Vec<Listed>, CliError> {
    let mut out = BTreeMap::new();
    for id in c.node_ids() {
        let resp = c.node(id)?.call(&ListGroupsRequest::default(), 5)?;
        if let Some(e) = CliError::kafka_opt(resp.error_code, None, "list groups") {
            return Err(e);
        }
        for g in resp.groups {
            // ListGroups before v5 has no type: every group is a classic one there.
            let kind = if g.group_type.is_empty() {
                "classic".to_string()
            } else {
                g.group_type.to_string()
            };
            out.insert(
                g.group_id.0.to_string(),
                Listed {
                    id: g.group_id.0.to_string(),
                    kind,
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// Committed offsets of a group: {(topic, partition): offset} (partitions without one left out).
pub fn committed(c: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    Ok(committed_with_metadata(c, group)?
        .into_iter()
        .map(|(tp, (o, _))| (tp, o))
        .collect())
}

/// Committed offsets of a group with their metadata strings.
pub fn committed_with_metadata(
    c: &mut Client,
    group: &str,
) -> Result<BTreeMap<Tp, (i64, String)>, CliError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let resp = c.coordinator(group)?.call(&req, 7)?;
    if let Some(e) =
        CliError::kafka_opt(resp.error_code, None, &format!("offsets of group {group}"))
    {
        return Err(e);
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            let what = format!(
                "offset of group {group} on {}-{}",
                t.name.0.as_str(),
                p.partition_index
            );
            if let Some(e) = CliError::kafka_opt(p.error_code, None, &what) {
                return Err(e);
            }
            if p.committed_offset >= 0 {
                let meta = p.metadata.as_deref().unwrap_or("").to_string();
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    (p.committed_offset, meta),
                );
            }
        }
    }
    Ok(out)
}

pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<(String, i32)>,
}

/// State and members, by DescribeGroups (classic) or ConsumerGroupDescribe (KIP-848).
pub fn members(c: &mut Client, group: &str) -> Result<(String, String, Vec<Member>), CliError> {
    let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let conn = c.coordinator(group)?;
    let resp = conn.call(&req, 5)?;
    let d = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| CliError::other(format!("describe group {group}: empty answer")))?;
    let classic_ok = d.error_code == 0 && d.group_state.as_str() != "Dead";
    if !classic_ok && conn.supports::<ConsumerGroupDescribeRequest>() {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        if let Ok(resp) = conn.call(&req, 1) {
            if let Some(g) = resp.groups.into_iter().next().filter(|g| g.error_code == 0) {
                let members = g
                    .members
                    .iter()
                    .map(|m| Member {
                        id: m.member_id.to_string(),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment: m
                            .assignment
                            .topic_partitions
                            .iter()
                            .flat_map(|tp| {
                                tp.partitions
                                    .iter()
                                    .map(|&p| (tp.topic_name.0.to_string(), p))
                            })
                            .collect(),
                    })
                    .collect();
                return Ok((g.group_state.to_string(), "consumer".into(), members));
            }
        }
    }
    if let Some(e) = CliError::kafka_opt(
        d.error_code,
        d.error_message.as_deref(),
        &format!("describe group {group}"),
    ) {
        return Err(e);
    }
    let members = d
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: decode_assignment(&m.member_assignment),
        })
        .collect();
    Ok((
        d.group_state.to_string(),
        d.protocol_type.to_string(),
        members,
    ))
}

/// The partitions in a classic consumer's assignment (empty when it is not one).
fn decode_assignment(raw: &Bytes) -> Vec<(String, i32)> {
    let mut b = raw.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let v = b.get_i16();
    match ConsumerProtocolAssignment::decode(&mut b, v.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|&p| (tp.topic.0.to_string(), p)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A group as JSON: state, members, offsets with end offsets and lag.
pub fn describe(c: &mut Client, group: &str) -> Result<Value, CliError> {
    let (state, protocol, members) = members(c, group)?;
    let offsets = committed(c, group)?;
    if offsets.is_empty() && members.is_empty() && state.eq_ignore_ascii_case("dead") {
        return Err(CliError::not_found(format!(
            "group {group}: GROUP_ID_NOT_FOUND (69): no such group [see `sluice group list`]"
        )));
    }
    let mut parts: BTreeSet<(String, i32)> = offsets.keys().cloned().collect();
    for m in &members {
        parts.extend(m.assignment.iter().cloned());
    }
    let parts: Vec<_> = parts.into_iter().collect();
    let ends = c.list_offsets(&parts, LATEST).unwrap_or_default();
    let owner: BTreeMap<&(String, i32), &Member> = members
        .iter()
        .flat_map(|m| m.assignment.iter().map(move |tp| (tp, m)))
        .collect();
    let mut total = 0i64;
    let rows: Vec<Value> = parts
        .iter()
        .map(|tp| {
            let committed = offsets.get(tp).copied();
            let end = ends.get(tp).copied();
            let lag = match (committed, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                (None, Some(e)) => Some(e.max(0)),
                _ => None,
            };
            total += lag.unwrap_or(0);
            let m = owner.get(tp);
            json!({
                "topic": tp.0, "partition": tp.1, "committed": committed, "end": end, "lag": lag,
                "member": m.map(|m| m.id.clone()), "client_id": m.map(|m| m.client_id.clone()),
            })
        })
        .collect();
    Ok(json!({
        "group": group,
        "state": state,
        "protocol_type": protocol,
        "members": members.iter().map(|m| json!({
            "member_id": m.id, "client_id": m.client_id, "host": m.host,
            "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "offsets": rows,
        "total_lag": total,
    }))
}

fn describe_text(d: &Value, with_members: bool) -> String {
    let mut out = format!(
        "GROUP {}  state {}  members {}  total lag {}\n",
        d["group"].as_str().unwrap_or(""),
        d["state"].as_str().unwrap_or(""),
        d["members"].as_array().map_or(0, |m| m.len()),
        d["total_lag"],
    );
    if with_members {
        out.push_str(&members_table(&d["members"], "PARTITIONS", |m| {
            let parts: Vec<String> = m["assignment"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{}-{}", a["topic"].as_str().unwrap_or(""), a["partition"]))
                .collect();
            parts.join(",")
        }));
    }
    let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "CLIENT-ID"]);
    for r in d["offsets"].as_array().into_iter().flatten() {
        t.row(vec![
            r["topic"].as_str().unwrap_or("").into(),
            r["partition"].to_string(),
            or_dash(&r["committed"]),
            or_dash(&r["end"]),
            or_dash(&r["lag"]),
            r["client_id"].as_str().unwrap_or("-").into(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

/// The partitions a reset or a share-group reset covers: those named (all of a topic's
/// when no list is given), or (`all`) every partition in `known`.
pub fn select_partitions(
    c: &mut Client,
    topics: &[String],
    all: bool,
    known: &BTreeSet<(String, i32)>,
) -> Result<Vec<(String, i32)>, CliError> {
    if all {
        if known.is_empty() {
            return Err(CliError::usage(
                "the group has no committed offsets: name topics with --topic",
            ));
        }
        return Ok(known.iter().cloned().collect());
    }
    if topics.is_empty() {
        return Err(CliError::usage(
            "say which partitions: --topic TOPIC[:P,P] (repeatable) or --all-topics",
        ));
    }
    let mut out = BTreeSet::new();
    for sel in topics {
        let (t, ps) = parse_topic_partitions(sel)?;
        let info = c
            .topics(Some(std::slice::from_ref(&t)))?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::not_found(format!("topic {t} does not exist")))?;
        let have: BTreeSet<i32> = info.partitions.iter().map(|p| p.0).collect();
        match ps {
            None => out.extend(have.iter().map(|&p| (t.clone(), p))),
            Some(ps) => {
                for p in ps {
                    if !have.contains(&p) {
                        return Err(CliError::not_found(format!(
                            "partition {t}-{p} does not exist (the topic has {})",
                            have.len()
                        )));
                    }
                    out.insert((t.clone(), p));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The target offset of every partition: (partition, current, target, log start, end).
pub fn plan(
    c: &mut Client,
    parts: &[(String, i32)],
    current: &BTreeMap<(String, i32), i64>,
    to: &ResetTo,
) -> Result<Vec<PlanRow>, CliError> {
    let starts = c.list_offsets(parts, EARLIEST)?;
    let ends = c.list_offsets(parts, LATEST)?;
    let by_time = match (&to.to_datetime, &to.by_duration) {
        (Some(t), _) => Some(c.list_offsets(parts, parse_time_ms(t)?)?),
        (_, Some(d)) => Some(c.list_offsets(parts, now_ms() - parse_duration_ms(d)?)?),
        _ => None,
    };
    let mut out = Vec::new();
    for tp in parts {
        let start = starts.get(tp).copied().unwrap_or(0);
        let end = ends.get(tp).copied().unwrap_or(0);
        let cur = current.get(tp).copied();
        let target = if to.to_earliest {
            start
        } else if to.to_latest {
            end
        } else if to.to_current {
            cur.unwrap_or(end)
        } else if let Some(o) = to.to_offset {
            if o < 0 {
                return Err(CliError::usage(format!(
                    "--to-offset {o}: an offset is 0 or more"
                )));
            }
            o
        } else if let Some(n) = to.shift_by {
            cur.unwrap_or(start) + n
        } else if let Some(m) = &by_time {
            match m.get(tp).copied() {
                Some(o) if o >= 0 => o,
                _ => end,
            }
        } else {
            return Err(CliError::usage(
                "say where to: --to-earliest, --to-latest, --to-offset N, ...",
            ));
        };
        out.push((
            tp.clone(),
            cur,
            target.clamp(start, end.max(start)),
            start,
            end,
        ));
    }
    Ok(out)
}

pub fn plan_json(rows: &[PlanRow]) -> Vec<Value> {
    rows.iter()
        .map(|((t, p), cur, target, start, end)| {
            json!({ "topic": t, "partition": p, "current": cur, "target": target, "log_start_offset": start, "end": end })
        })
        .collect()
}

pub fn plan_text(title: &str, rows: &[Value]) -> String {
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT",
        "TARGET",
        "LOG-START",
        "END",
    ]);
    for r in rows {
        t.row(vec![
            r["topic"].as_str().unwrap_or("").into(),
            r["partition"].to_string(),
            or_dash(&r["current"]),
            r["target"].to_string(),
            r["log_start_offset"].to_string(),
            r["end"].to_string(),
        ]);
    }
    format!("{title}\n\n{}", t.render())
}

fn reset(ctx: &Ctx, c: &mut Client, a: ResetArgs) -> Result<(), CliError> {
    let (state, _, members) = members(c, &a.group)?;
    let current = committed(c, &a.group)?;
    let known: BTreeSet<_> = current.keys().cloned().collect();
    let parts = select_partitions(c, &a.topics, a.all_topics, &known)?;
    let rows = plan(c, &parts, &current, &a.to)?;
    let json_rows = plan_json(&rows);
    if a.dry_run {
        let json = json!({ "group": a.group, "dry_run": true, "state": state, "plan": json_rows });
        emit(ctx.format, &json, || {
            plan_text(
                &format!(
                    "reset plan for group {} (dry run: nothing changed)",
                    a.group
                ),
                &json_rows,
            )
        });
        return Ok(());
    }
    if !members.is_empty()
        || !(state.eq_ignore_ascii_case("empty") || state.eq_ignore_ascii_case("dead"))
    {
        return Err(CliError::other(format!(
            "reset group {}: the group is {state} with {} live member(s): NON_EMPTY_GROUP (68) \
             [stop its consumers first; --dry-run shows the plan]",
            a.group,
            members.len()
        )));
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), _, target, _, _) in &rows {
        by_topic.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*target)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(""))),
        );
    }
    let mut progress = Progress::new(&format!("resetting {}", a.group));
    let total = rows.len() as u64;
    let mut done = 0u64;
    // A few hundred partitions a request.
    let mut batch: Vec<OffsetCommitRequestTopic> = Vec::new();
    let mut in_batch = 0usize;
    let send =
        |c: &mut Client, batch: &mut Vec<OffsetCommitRequestTopic>| -> Result<u64, CliError> {
            if batch.is_empty() {
                return Ok(0);
            }
            let req = OffsetCommitRequest::default()
                .with_group_id(group_id(a.group.clone()))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_retention_time_ms(-1)
                .with_topics(std::mem::take(batch));
            let resp = c.coordinator(&a.group)?.call(&req, 8)?;
            let mut n = 0;
            for t in resp.topics {
                for p in t.partitions {
                    let what = format!(
                        "commit for group {} on {}-{}",
                        a.group,
                        t.name.0.as_str(),
                        p.partition_index
                    );
                    if let Some(e) = CliError::kafka_opt(p.error_code, None, &what) {
                        return Err(e);
                    }
                    n += 1;
                }
            }
            Ok(n)
        };
    for (t, ps) in by_topic {
        for chunk in ps.chunks(500) {
            in_batch += chunk.len();
            batch.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(chunk.to_vec()),
            );
            if in_batch >= 500 {
                done += send(c, &mut batch)?;
                in_batch = 0;
                progress.update(done, Some(total));
            }
        }
    }
    done += send(c, &mut batch)?;
    progress.finish();
    let json = json!({ "group": a.group, "dry_run": false, "reset": done, "plan": json_rows });
    emit(ctx.format, &json, || {
        plan_text(
            &format!("reset group {}: {done} partition(s) moved", a.group),
            &json_rows,
        )
    });
    Ok(())
}
