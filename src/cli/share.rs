//! `sluice share-group list|describe|reset|delete`: share groups (KIP-932). librdkafka's
//! admin API has no share-group calls, so these are kafka-protocol frames:
//! ListGroups v5 (type filter `share`), ShareGroupDescribe, DescribeShareGroupOffsets,
//! AlterShareGroupOffsets and DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteGroupsRequest, DescribeShareGroupOffsetsRequest,
    ListGroupsRequest, ShareGroupDescribeRequest,
};
use serde_json::{json, Value};

use super::client::{group_id, s, topic_name, Client, LATEST};
use super::error::CliError;
use super::group::{plan, plan_json, plan_text, select_partitions, PlanRow, ResetTo};
use super::output::{emit, members_table, or_dash, Table};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum ShareCmd {
    /// List share groups.
    List,
    /// Members, their assignments, and per partition the share-partition start offset
    /// (SPSO), the end of the log and the records not yet past the SPSO.
    Describe { group: String },
    /// Move a share group's start offsets (the group must have no members).
    Reset {
        group: String,
        /// Topic to reset, TOPIC or TOPIC:0,1,2 (repeat for more).
        #[arg(long = "topic", short = 't')]
        topics: Vec<String>,
        /// Every partition the group has a start offset for.
        #[arg(long, conflicts_with = "topics")]
        all_topics: bool,
        #[command(flatten)]
        to: ResetTo,
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete share groups and their state.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, cmd: ShareCmd) -> Result<(), CliError> {
    let mut c = ctx.client()?;
    match cmd {
        ShareCmd::List => run_list(ctx, &mut c),
        ShareCmd::Describe { group } => {
            let mut d = describe(&mut c, &group)?;
            if let Some(admin) = ctx.admin_json("/api/shares") {
                merge_admin(&mut d, &admin);
            }
            emit(ctx.format, &d, || describe_text(&d));
            Ok(())
        }
        ShareCmd::Reset {
            group,
            topics,
            all_topics,
            to,
            dry_run,
        } => {
            let d = describe(&mut c, &group)?;
            let current = start_offsets(&mut c, &group)?;
            let known: BTreeSet<_> = current.keys().cloned().collect();
            let parts = select_partitions(&mut c, &topics, all_topics, &known)?;
            let rows = plan(&mut c, &parts, &current, &to)?;
            let json_rows = plan_json(&rows);
            if dry_run {
                let json = json!({ "group": group, "dry_run": true, "plan": json_rows });
                emit(ctx.format, &json, || {
                    plan_text(
                        &format!("reset plan for share group {group} (dry run: nothing changed)"),
                        &json_rows,
                    )
                });
                return Ok(());
            }
            let members = d["members"].as_array().map_or(0, |m| m.len());
            if members > 0 {
                return Err(CliError::other(format!(
                    "reset share group {group}: it has {members} member(s): NON_EMPTY_GROUP (68) [stop its consumers first]"
                )));
            }
            alter_start_offsets(&mut c, &group, &rows)?;
            let json =
                json!({ "group": group, "dry_run": false, "reset": rows.len(), "plan": json_rows });
            emit(ctx.format, &json, || {
                let title = format!(
                    "reset share group {group}: {} partition(s) moved",
                    rows.len()
                );
                plan_text(&title, &json_rows)
            });
            Ok(())
        }
        ShareCmd::Delete { groups } => run_delete(ctx, &mut c, &groups),
    }
}

fn run_list(ctx: &Ctx, c: &mut Client) -> Result<(), CliError> {
    let groups = list(c)?;
    let json = json!({ "groups": groups.iter().map(|(g, st)| json!({"group": g, "state": st})).collect::<Vec<_>>() });
    emit(ctx.format, &json, || {
        let mut t = Table::new(&["SHARE-GROUP", "STATE"]);
        for (g, st) in &groups {
            t.row(vec![g.clone(), st.clone()]);
        }
        t.render()
    });
    Ok(())
}

/// AlterShareGroupOffsets (KIP-932): each planned partition's start offset to its target.
fn alter_start_offsets(c: &mut Client, group: &str, rows: &[PlanRow]) -> Result<(), CliError> {
    let mut by_topic: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> = BTreeMap::new();
    for ((t, p), _, target, _, _) in rows {
        by_topic.entry(t.as_str()).or_default().push(
            AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(*p)
                .with_start_offset(*target),
        );
    }
    let req = AlterShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group.to_string()))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = c.coordinator(group)?.call(&req, 0)?;
    let what = format!("reset share group {group}");
    if let Some(e) = CliError::kafka_opt(resp.error_code, resp.error_message.as_deref(), &what) {
        return Err(e);
    }
    for t in &resp.responses {
        for p in &t.partitions {
            let what = format!(
                "reset share group {group} on {}-{}",
                t.topic_name.0.as_str(),
                p.partition_index
            );
            if let Some(e) = CliError::kafka_opt(p.error_code, p.error_message.as_deref(), &what) {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn run_delete(ctx: &Ctx, c: &mut Client, groups: &[String]) -> Result<(), CliError> {
    for g in groups {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(g.clone())]);
        let resp = c.coordinator(g)?.call(&req, 2)?;
        for r in resp.results {
            if let Some(e) =
                CliError::kafka_opt(r.error_code, None, &format!("delete share group {g}"))
            {
                return Err(e);
            }
        }
    }
    emit(
        ctx.format,
        &json!({ "groups": groups.iter().map(|g| json!({"group": g, "deleted": true})).collect::<Vec<_>>() }),
        || {
            groups
                .iter()
                .map(|g| format!("deleted share group {g}\n"))
                .collect()
        },
    );
    Ok(())
}

/// Share groups with their state.
pub fn list(c: &mut Client) -> Result<Vec<(String, String)>, CliError> {
    let mut out = BTreeMap::new();
    for id in c.node_ids() {
        let conn = c.node(id)?;
        if conn.version_for::<ListGroupsRequest>(5)? < 5 {
            return Err(CliError::unsupported(format!(
                "broker {} has no share groups (ListGroups v5, KIP-932)",
                conn.addr
            )));
        }
        let req = ListGroupsRequest::default().with_types_filter(vec![s("share")]);
        let resp = conn.call(&req, 5)?;
        if let Some(e) = CliError::kafka_opt(resp.error_code, None, "list share groups") {
            return Err(e);
        }
        for g in resp.groups {
            out.insert(g.group_id.0.to_string(), g.group_state.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// The share-partition start offsets of a group.
pub fn start_offsets(
    c: &mut Client,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(None),
    ]);
    let resp = c.coordinator(group)?.call(&req, 0)?;
    let mut out = BTreeMap::new();
    for g in resp.groups {
        if let Some(e) = CliError::kafka_opt(
            g.error_code,
            g.error_message.as_deref(),
            &format!("start offsets of share group {group}"),
        ) {
            return Err(e);
        }
        for t in g.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.start_offset >= 0 {
                    out.insert(
                        (t.topic_name.0.to_string(), p.partition_index),
                        p.start_offset,
                    );
                }
            }
        }
    }
    Ok(out)
}

pub fn describe(c: &mut Client, group: &str) -> Result<Value, CliError> {
    let req = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
    let resp = c.coordinator(group)?.call(&req, 1)?;
    let g =
        resp.groups.into_iter().next().ok_or_else(|| {
            CliError::other(format!("describe share group {group}: empty answer"))
        })?;
    if let Some(e) = CliError::kafka_opt(
        g.error_code,
        g.error_message.as_deref(),
        &format!("describe share group {group}"),
    ) {
        return Err(e);
    }
    let starts = start_offsets(c, group)?;
    let mut parts: BTreeSet<(String, i32)> = starts.keys().cloned().collect();
    for m in &g.members {
        for tp in &m.assignment.topic_partitions {
            parts.extend(
                tp.partitions
                    .iter()
                    .map(|&p| (tp.topic_name.0.to_string(), p)),
            );
        }
    }
    let parts: Vec<_> = parts.into_iter().collect();
    let ends = c.list_offsets(&parts, LATEST).unwrap_or_default();
    let mut total = 0;
    let rows: Vec<Value> = parts
        .iter()
        .map(|tp| {
            let start = starts.get(tp).copied();
            let end = ends.get(tp).copied();
            let behind = match (start, end) {
                (Some(st), Some(e)) => Some((e - st).max(0)),
                _ => None,
            };
            total += behind.unwrap_or(0);
            json!({ "topic": tp.0, "partition": tp.1, "start_offset": start, "end": end, "lag": behind })
        })
        .collect();
    Ok(json!({
        "group": group,
        "state": g.group_state.as_str(),
        "group_epoch": g.group_epoch,
        "assignor": g.assignor_name.as_str(),
        "members": g.members.iter().map(|m| json!({
            "member_id": m.member_id.as_str(), "client_id": m.client_id.as_str(), "host": m.client_host.as_str(),
            "subscribed": m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect::<Vec<_>>(),
            "assignment": m.assignment.topic_partitions.iter().flat_map(|tp| tp.partitions.iter().map(move |p| json!({"topic": tp.topic_name.0.as_str(), "partition": p}))).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "partitions": rows,
        "total_lag": total,
    }))
}

/// Add what Sluice's admin API knows of each share partition (records available,
/// acquired, archived) to a describe.
fn merge_admin(d: &mut Value, admin: &Value) {
    let group = d["group"].as_str().unwrap_or("").to_string();
    let Some(rows) = d["partitions"].as_array_mut() else {
        return;
    };
    for r in rows {
        let found = admin["shares"].as_array().into_iter().flatten().find(|s| {
            s["group"].as_str() == Some(group.as_str())
                && s["topic"] == r["topic"]
                && s["partition"] == r["partition"]
        });
        if let Some(s) = found {
            for k in [
                "available",
                "acquired",
                "archived_total",
                "delivery_limit_hits",
                "lock_expiries",
            ] {
                r[k] = s[k].clone();
            }
        }
    }
}

fn describe_text(d: &Value) -> String {
    let mut out = format!(
        "SHARE GROUP {}  state {}  members {}  not yet delivered {}\n",
        d["group"].as_str().unwrap_or(""),
        d["state"].as_str().unwrap_or(""),
        d["members"].as_array().map_or(0, |m| m.len()),
        d["total_lag"]
    );
    out.push_str(&members_table(&d["members"], "SUBSCRIBED", |m| {
        let subs: Vec<&str> = m["subscribed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        subs.join(",")
    }));
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "START-OFFSET",
        "END",
        "LAG",
        "AVAILABLE",
        "ACQUIRED",
        "ARCHIVED",
    ]);
    for r in d["partitions"].as_array().into_iter().flatten() {
        t.row(vec![
            r["topic"].as_str().unwrap_or("").into(),
            r["partition"].to_string(),
            or_dash(&r["start_offset"]),
            or_dash(&r["end"]),
            or_dash(&r["lag"]),
            or_dash(&r["available"]),
            or_dash(&r["acquired"]),
            or_dash(&r["archived_total"]),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}
