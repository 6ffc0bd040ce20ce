//! `sluice cluster info`: brokers, controller, the APIs and versions the bootstrap broker
//! advertises, its log directories and their usage; with Sluice, also its version and
//! shards (from the admin endpoint's `/api/overview`).

use clap::Subcommand;
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest};
use serde_json::{json, Value};

use super::error::CliError;
use super::output::{emit, human_bytes, Table};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Brokers, advertised APIs, log directories (and shards, with Sluice).
    Info {
        /// List every advertised API with its versions (the table shows a count otherwise).
        #[arg(long)]
        apis: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: ClusterCmd) -> Result<(), CliError> {
    let ClusterCmd::Info { apis } = cmd;
    let mut c = ctx.client()?;
    let md = c.metadata(Some(&[]))?;
    let all_topics = c.topics(None)?;
    let versions = c.bootstrap().versions.clone();
    let api_list: Vec<Value> = versions
        .iter()
        .map(|(k, (min, max))| {
            let name = ApiKey::try_from(*k)
                .map(|a| format!("{a:?}"))
                .unwrap_or_else(|_| format!("Unknown{k}"));
            json!({ "key": k, "name": name, "min_version": min, "max_version": max })
        })
        .collect();
    let mut dirs = Vec::new();
    for id in c.node_ids() {
        let Ok(conn) = c.node(id) else { continue };
        let Ok(resp) = conn.call(&DescribeLogDirsRequest::default().with_topics(None), 4) else {
            continue;
        };
        for d in resp.results {
            let used: i64 = d
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.partition_size)
                .sum();
            dirs.push(json!({
                "broker": id, "log_dir": d.log_dir.as_str(), "error_code": d.error_code,
                "total_bytes": if d.total_bytes >= 0 { json!(d.total_bytes) } else { Value::Null },
                "usable_bytes": if d.usable_bytes >= 0 { json!(d.usable_bytes) } else { Value::Null },
                "partitions_bytes": used,
            }));
        }
    }
    let sluice = ctx.admin_json("/api/overview");
    let json = json!({
        "cluster_id": md.cluster_id.as_deref(),
        "controller": md.controller_id.0,
        "brokers": md.brokers.iter().map(|b| json!({"node_id": b.node_id.0, "host": b.host.as_str(), "port": b.port, "rack": b.rack.as_deref()})).collect::<Vec<_>>(),
        "topics": all_topics.iter().filter(|t| !t.internal).count(),
        "partitions": all_topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
        "apis": api_list,
        "log_dirs": dirs,
        "sluice": sluice,
    });
    emit(ctx.format, &json, || {
        let mut out = format!(
            "CLUSTER {}  controller {}  topics {}  partitions {}\n",
            json["cluster_id"].as_str().unwrap_or("-"),
            json["controller"],
            json["topics"],
            json["partitions"]
        );
        if let Some(s) = &json["sluice"].as_object() {
            out.push_str(&format!(
                "sluice {}  shards {}  uptime {}s  connections {}  data dir {}\n",
                s.get("version").and_then(Value::as_str).unwrap_or("?"),
                s.get("shards").cloned().unwrap_or_default(),
                s.get("uptime_s").cloned().unwrap_or_default(),
                s.get("connections").cloned().unwrap_or_default(),
                s.get("data_dir").and_then(Value::as_str).unwrap_or("?"),
            ));
        }
        let mut t = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
        for b in json["brokers"].as_array().into_iter().flatten() {
            t.row(vec![
                b["node_id"].to_string(),
                b["host"].as_str().unwrap_or("").into(),
                b["port"].to_string(),
                b["rack"].as_str().unwrap_or("-").into(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        let mut t = Table::new(&["BROKER", "LOG-DIR", "PARTITIONS", "FREE", "TOTAL"]);
        for d in json["log_dirs"].as_array().into_iter().flatten() {
            let b = |v: &Value| v.as_u64().map_or("-".into(), human_bytes);
            t.row(vec![
                d["broker"].to_string(),
                d["log_dir"].as_str().unwrap_or("").into(),
                b(&d["partitions_bytes"]),
                b(&d["usable_bytes"]),
                b(&d["total_bytes"]),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        if apis {
            let mut t = Table::new(&["KEY", "API", "VERSIONS"]);
            for a in json["apis"].as_array().into_iter().flatten() {
                t.row(vec![
                    a["key"].to_string(),
                    a["name"].as_str().unwrap_or("").into(),
                    format!("{}-{}", a["min_version"], a["max_version"]),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
        } else {
            out.push_str(&format!(
                "\n{} APIs advertised (--apis lists them)\n",
                json["apis"].as_array().map_or(0, |a| a.len())
            ));
        }
        out
    });
    Ok(())
}
