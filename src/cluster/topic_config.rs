//! Topic configs: the Kafka names Sluice understands, their broker-wide defaults, and how
//! a topic's overrides become the `LogConfig` its partitions run with.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::BrokerConfig;
use crate::log::{FlushPolicy, LogConfig, TimestampType};

/// A config a client may not set: the Kafka error code INVALID_CONFIG (40) with this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Every topic config Sluice knows, in DescribeConfigs order.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "index.interval.bytes",
    "flush.policy",
    "max.queue.bytes",
    "min.insync.replicas",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "errors.deadletterqueue.group.enable",
    "sluice.delivery.delay.ms",
];

/// KIP-1191: a topic takes dead-letter records of share groups only when this is true.
pub const DLQ_GROUP_ENABLE: &str = "errors.deadletterqueue.group.enable";
/// Sluice: share groups acquire a record only this long after its timestamp.
pub const DELIVERY_DELAY_MS: &str = "sluice.delivery.delay.ms";

/// Kafka's topic `compression.type`, with the level of its codec
/// (`compression.gzip.level` -1 or 1–9, `compression.lz4.level` 1–17,
/// `compression.zstd.level` -131072–22; Kafka's defaults -1, 9 and 3, KIP-390).
/// `Producer` keeps batches as the producer compressed them; any other value makes the
/// partition's owner recompress batches in another codec (`partition::compress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Producer,
    Uncompressed,
    Gzip {
        level: i32,
    },
    Snappy,
    Lz4 {
        level: i32,
    },
    Zstd {
        level: i32,
    },
}

/// (key, lowest, highest, Kafka's default) of the codec levels.
const LEVELS: &[(&str, i32, i32, i32)] = &[
    ("compression.gzip.level", -1, 9, -1),
    ("compression.lz4.level", 1, 17, 9),
    ("compression.zstd.level", -131072, 22, 3),
];

impl Compression {
    /// The codec id of the batch attributes the topic stores (None: as produced).
    pub fn codec(self) -> Option<u8> {
        match self {
            Compression::Producer => None,
            Compression::Uncompressed => Some(0),
            Compression::Gzip { .. } => Some(1),
            Compression::Snappy => Some(2),
            Compression::Lz4 { .. } => Some(3),
            Compression::Zstd { .. } => Some(4),
        }
    }

    /// The compression of a topic with these overrides (validated when they were set).
    pub fn from_overrides(o: &BTreeMap<String, String>) -> Result<Compression, ConfigError> {
        let level = |key: &str| -> Result<i32, ConfigError> {
            let &(_, min, max, default) = LEVELS
                .iter()
                .find(|l| l.0 == key)
                .ok_or_else(|| ConfigError(format!("unknown level {key}")))?;
            let Some(v) = o.get(key) else {
                return Ok(default);
            };
            match parse_i64(key, v)? {
                x if (min as i64..=max as i64).contains(&x) => Ok(x as i32),
                x => Err(ConfigError(format!(
                    "{key} must be between {min} and {max}, got {x}"
                ))),
            }
        };
        let gzip = level("compression.gzip.level")?;
        if gzip == 0 {
            return Err(ConfigError(
                "compression.gzip.level must be -1 or 1-9".into(),
            ));
        }
        let lz4 = level("compression.lz4.level")?;
        let zstd = level("compression.zstd.level")?;
        Ok(match o.get("compression.type").map(|v| v.trim()) {
            None | Some("producer") => Compression::Producer,
            Some("uncompressed") => Compression::Uncompressed,
            Some("gzip") => Compression::Gzip { level: gzip },
            Some("snappy") => Compression::Snappy,
            Some("lz4") => Compression::Lz4 { level: lz4 },
            Some("zstd") => Compression::Zstd { level: zstd },
            Some(other) => {
                return Err(ConfigError(format!(
                    "compression.type must be one of producer, uncompressed, gzip, snappy, lz4, zstd, got '{other}'"
                )))
            }
        })
    }

    /// Kafka's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Producer => "producer",
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip { .. } => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 { .. } => "lz4",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

/// Broker-wide defaults for topic configs.
#[derive(Debug, Clone)]
pub struct TopicConfigDefaults {
    pub base: LogConfig,
}

impl Default for TopicConfigDefaults {
    fn default() -> Self {
        TopicConfigDefaults::from_broker(&BrokerConfig::default())
    }
}

fn opt_i64(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-1".into())
}

fn parse_i64(key: &str, v: &str) -> Result<i64, ConfigError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ConfigError(format!("{key} must be an integer, got '{v}'")))
}

fn parse_limit(key: &str, v: &str) -> Result<Option<u64>, ConfigError> {
    match parse_i64(key, v)? {
        -1 => Ok(None),
        x if x >= 0 => Ok(Some(x as u64)),
        x => Err(ConfigError(format!("{key} must be -1 or ≥ 0, got {x}"))),
    }
}

fn parse_min(key: &str, v: &str, min: i64) -> Result<i64, ConfigError> {
    let x = parse_i64(key, v)?;
    if x < min {
        return Err(ConfigError(format!(
            "{key} must be at least {min}, got {x}"
        )));
    }
    Ok(x)
}

impl TopicConfigDefaults {
    pub fn from_broker(c: &BrokerConfig) -> Self {
        let base = LogConfig {
            segment_bytes: c.segment_bytes,
            retention_ms: c.retention_ms,
            retention_bytes: c.retention_bytes,
            flush: c.flush,
            ..LogConfig::default()
        };
        TopicConfigDefaults { base }
    }

    /// Apply one override to `cfg`, or say why it cannot be.
    fn apply(cfg: &mut LogConfig, key: &str, v: &str) -> Result<(), ConfigError> {
        match key {
            "cleanup.policy" => cfg.cleanup = v.parse().map_err(ConfigError)?,
            "min.cleanable.dirty.ratio" => {
                cfg.min_cleanable_dirty_ratio = match v.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        return Err(ConfigError(format!(
                            "{key} must be a number between 0 and 1, got '{v}'"
                        )))
                    }
                }
            }
            "min.compaction.lag.ms" => cfg.min_compaction_lag_ms = parse_min(key, v, 0)? as u64,
            "max.compaction.lag.ms" => cfg.max_compaction_lag_ms = parse_min(key, v, 1)? as u64,
            "delete.retention.ms" => cfg.delete_retention_ms = parse_min(key, v, 0)? as u64,
            "retention.ms" => cfg.retention_ms = parse_limit(key, v)?,
            "retention.bytes" => cfg.retention_bytes = parse_limit(key, v)?,
            "segment.bytes" => cfg.segment_bytes = parse_min(key, v, 1024)? as u64,
            "segment.ms" => cfg.segment_ms = Some(parse_min(key, v, 1)? as u64),
            "max.message.bytes" => cfg.max_message_bytes = parse_min(key, v, 0)? as usize,
            "index.interval.bytes" => {
                cfg.index_interval_bytes = parse_min(key, v, 0)? as usize;
            }
            "message.timestamp.type" => {
                cfg.timestamp_type = match v {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(ConfigError(format!(
                            "message.timestamp.type must be CreateTime or LogAppendTime, got '{v}'"
                        )))
                    }
                }
            }
            "flush.policy" => {
                cfg.flush = v.parse().map_err(|e| {
                    ConfigError(format!(
                        "flush.policy must be always, interval:<ms> or never: {e}"
                    ))
                })?
            }
            "max.queue.bytes" => cfg.max_queue_bytes = parse_limit(key, v)?,
            DLQ_GROUP_ENABLE => {
                if v != "true" && v != "false" {
                    return Err(ConfigError(format!(
                        "{key} must be true or false, got '{v}'"
                    )));
                }
            }
            DELIVERY_DELAY_MS => {
                parse_min(key, v, 0)?;
            }
            "min.insync.replicas" => {
                if parse_i64(key, v)? != 1 {
                    return Err(ConfigError(
                        "min.insync.replicas must be 1 on a single-node broker".into(),
                    ));
                }
            }
            "compression.type"
            | "compression.gzip.level"
            | "compression.lz4.level"
            | "compression.zstd.level" => {
                // Checked alone here; `Compression::from_overrides` reads them together.
                let mut one = BTreeMap::new();
                one.insert(key.to_string(), v.to_string());
                Compression::from_overrides(&one)?;
            }
            _ => {
                return Err(ConfigError(format!(
                    "unknown topic config '{key}'; supported: {}",
                    TOPIC_CONFIG_KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// The log config of a topic with these overrides.
    pub fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        let mut cfg = self.base.clone();
        for (k, v) in overrides {
            Self::apply(&mut cfg, k, v)?;
        }
        if cfg.min_compaction_lag_ms > cfg.max_compaction_lag_ms {
            return Err(ConfigError(format!(
                "min.compaction.lag.ms ({}) must not exceed max.compaction.lag.ms ({})",
                cfg.min_compaction_lag_ms, cfg.max_compaction_lag_ms
            )));
        }
        Ok(cfg)
    }

    /// Every known config with its effective value, for DescribeConfigs.
    pub fn describe(
        cfg: &LogConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<(&'static str, String)> {
        let compression = Compression::from_overrides(overrides).unwrap_or_default();
        let level = |key: &str| {
            overrides.get(key).cloned().unwrap_or_else(|| {
                let l = LEVELS.iter().find(|l| l.0 == key);
                l.map(|l| l.3.to_string()).unwrap_or_default()
            })
        };
        TOPIC_CONFIG_KEYS
            .iter()
            .map(|&k| {
                let v = match k {
                    "cleanup.policy" => cfg.cleanup.to_string(),
                    "min.cleanable.dirty.ratio" => cfg.min_cleanable_dirty_ratio.to_string(),
                    "min.compaction.lag.ms" => cfg.min_compaction_lag_ms.to_string(),
                    "max.compaction.lag.ms" => cfg.max_compaction_lag_ms.to_string(),
                    "delete.retention.ms" => cfg.delete_retention_ms.to_string(),
                    "retention.ms" => opt_i64(cfg.retention_ms),
                    "retention.bytes" => opt_i64(cfg.retention_bytes),
                    "segment.bytes" => cfg.segment_bytes.to_string(),
                    "segment.ms" => cfg.segment_ms.unwrap_or(7 * 24 * 3600 * 1000).to_string(),
                    "max.message.bytes" => cfg.max_message_bytes.to_string(),
                    "message.timestamp.type" => match cfg.timestamp_type {
                        TimestampType::CreateTime => "CreateTime".into(),
                        TimestampType::LogAppendTime => "LogAppendTime".into(),
                    },
                    "index.interval.bytes" => cfg.index_interval_bytes.to_string(),
                    "flush.policy" => cfg.flush.to_string(),
                    "max.queue.bytes" => opt_i64(cfg.max_queue_bytes),
                    "min.insync.replicas" => "1".into(),
                    "compression.type" => compression.name().into(),
                    k @ ("compression.gzip.level"
                    | "compression.lz4.level"
                    | "compression.zstd.level") => level(k),
                    // Configs the log does not interpret: their override, else Kafka's
                    // (or Sluice's) default.
                    DLQ_GROUP_ENABLE => overrides.get(k).cloned().unwrap_or_else(|| "false".into()),
                    DELIVERY_DELAY_MS => overrides.get(k).cloned().unwrap_or_else(|| "0".into()),
                    _ => String::new(),
                };
                (k, v)
            })
            .collect()
    }
}

/// The list-valued topic configs (IncrementalAlterConfigs APPEND and SUBTRACT apply).
pub fn is_list_config(key: &str) -> bool {
    key == "cleanup.policy"
}

/// IncrementalAlterConfigs APPEND (`subtract` false) or SUBTRACT of `items` (a comma list)
/// to the list `current`: appended items not already there go at the end, in order.
pub fn edit_list(current: &str, items: &str, subtract: bool) -> String {
    let mut list: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if subtract {
            list.retain(|x| *x != item);
        } else if !list.contains(&item) {
            list.push(item);
        }
    }
    list.join(",")
}

/// The flush interval to wait for under `interval:<ms>`, if any.
pub fn flush_interval(policy: FlushPolicy) -> Option<Duration> {
    match policy {
        FlushPolicy::Interval(d) => Some(d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_type_and_levels_are_kafkas() {
        let mut o = BTreeMap::new();
        assert_eq!(Compression::from_overrides(&o), Ok(Compression::Producer));
        o.insert("compression.type".into(), "zstd".into());
        assert_eq!(
            Compression::from_overrides(&o),
            Ok(Compression::Zstd { level: 3 })
        );
        o.insert("compression.zstd.level".into(), "-5".into());
        assert_eq!(
            Compression::from_overrides(&o),
            Ok(Compression::Zstd { level: -5 })
        );
        o.insert("compression.type".into(), "gzip".into());
        assert_eq!(
            Compression::from_overrides(&o),
            Ok(Compression::Gzip { level: -1 })
        );
        let d = TopicConfigDefaults::default();
        assert!(d.log_config(&o).is_ok());
        let described = TopicConfigDefaults::describe(&d.log_config(&o).unwrap(), &o);
        assert!(described.contains(&("compression.type", "gzip".into())));
        assert!(described.contains(&("compression.lz4.level", "9".into())));
    }

    #[test]
    fn compaction_configs_are_read_and_described() {
        let d = TopicConfigDefaults::default();
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".into(), "compact".into());
        o.insert("min.cleanable.dirty.ratio".into(), "0.01".into());
        o.insert("delete.retention.ms".into(), "100".into());
        o.insert("min.compaction.lag.ms".into(), "5".into());
        let c = d.log_config(&o).unwrap();
        assert!(c.cleanup.compact && !c.cleanup.delete);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.01);
        assert_eq!((c.delete_retention_ms, c.min_compaction_lag_ms), (100, 5));
        let described = TopicConfigDefaults::describe(&c, &o);
        assert!(described.contains(&("cleanup.policy", "compact".into())));
        assert!(described.contains(&("delete.retention.ms", "100".into())));
        o.insert("max.compaction.lag.ms".into(), "4".into());
        assert!(d.log_config(&o).is_err(), "min lag above max lag");
        assert_eq!(edit_list("delete", "compact", false), "delete,compact");
        assert_eq!(
            edit_list("delete,compact", "compact", false),
            "delete,compact"
        );
        assert_eq!(edit_list("delete,compact", "delete", true), "compact");
        assert_eq!(edit_list("compact", "compact", true), "");
    }

    #[test]
    fn overrides_change_the_log_config_and_bad_values_are_refused() {
        let d = TopicConfigDefaults::default();
        let mut o = BTreeMap::new();
        o.insert("retention.bytes".into(), "4096".into());
        o.insert("message.timestamp.type".into(), "LogAppendTime".into());
        o.insert("flush.policy".into(), "always".into());
        let c = d.log_config(&o).unwrap();
        assert_eq!(c.retention_bytes, Some(4096));
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.flush, FlushPolicy::Always);

        for (k, v) in [
            ("cleanup.policy", "forever"),
            ("cleanup.policy", ""),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "later"),
            ("retention.ms", "soon"),
            ("no.such.config", "1"),
            ("flush.policy", "sometimes"),
            ("compression.type", "brotli"),
            ("compression.zstd.level", "23"),
            ("compression.lz4.level", "0"),
            ("compression.gzip.level", "0"),
        ] {
            let mut o = BTreeMap::new();
            o.insert(k.to_string(), v.to_string());
            assert!(d.log_config(&o).is_err(), "{k}={v} should be refused");
        }
    }
}
