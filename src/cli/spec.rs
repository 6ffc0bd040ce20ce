//! The small languages of the command line: durations (`90s`, `10m`, `1h30m`, `2d`,
//! ISO 8601 `PT10M`), points in time (milliseconds since the epoch, or RFC 3339
//! `2024-05-01T12:00:00Z` / `2024-05-01T12:00:00.250+02:00` / `2024-05-01`), topic and
//! partition selections (`orders` or `orders:0,2,5`), `key=value` pairs, and where a
//! consumer starts (`--from`).

use super::error::CliError;

/// A duration in milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::usage(format!(
            "bad duration {text:?}: use e.g. 90s, 10m, 1h30m, 2d, 500ms or PT10M"
        ))
    };
    let t = text.trim();
    if let Some(iso) = t.strip_prefix("PT").or_else(|| t.strip_prefix("pt")) {
        return parse_units(iso, &[("H", 3_600_000), ("M", 60_000), ("S", 1000)]).ok_or_else(bad);
    }
    if let Some(iso) = t.strip_prefix('P').or_else(|| t.strip_prefix('p')) {
        let (days, rest) = match iso.split_once('T') {
            Some((d, r)) => (d, Some(r)),
            None => (iso, None),
        };
        let mut ms = parse_units(days, &[("D", 86_400_000)]).ok_or_else(bad)?;
        if let Some(r) = rest {
            ms +=
                parse_units(r, &[("H", 3_600_000), ("M", 60_000), ("S", 1000)]).ok_or_else(bad)?;
        }
        return Ok(ms);
    }
    parse_units(
        t,
        &[
            ("ms", 1),
            ("s", 1000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
        ],
    )
    .ok_or_else(bad)
}

/// `<number><unit>` repeated; units tried longest first; a bare number is refused.
fn parse_units(t: &str, units: &[(&str, i64)]) -> Option<i64> {
    if t.is_empty() {
        return None;
    }
    let mut sorted = units.to_vec();
    sorted.sort_by_key(|(u, _)| std::cmp::Reverse(u.len()));
    let mut rest = t;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let (u, mult) = sorted.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[u.len()..];
        total += n * *mult as f64;
    }
    Some(total.round() as i64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A point in time in milliseconds since the epoch.
pub fn parse_time_ms(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| CliError::usage(format!("bad timestamp {text:?}")));
    }
    parse_rfc3339(t).ok_or_else(|| {
        CliError::usage(format!(
            "bad time {text:?}: use milliseconds since the epoch or RFC 3339, e.g. 2024-05-01T12:00:00Z"
        ))
    })
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    let mut dp = date.split('-');
    let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let Some(time) = time else { return Some(ms) };
    let (clock, offset_ms) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (c, sign * (num(oh)? * 3_600_000 + num(om)? * 60_000))
    } else {
        (time, 0) // no offset: UTC
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut tp = hms.split(':');
    let h = num(tp.next()?)?;
    let mi = num(tp.next()?)?;
    let sec = tp.next().map(num).unwrap_or(Some(0))?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac_ms = if frac.is_empty() {
        0
    } else {
        let f = format!("{frac:0<3}");
        num(&f[..3])?
    };
    ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + frac_ms;
    Some(ms - offset_ms)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `topic` or `topic:0,2,5`: the topic and the partitions named (None: all of them).
pub fn parse_topic_partitions(text: &str) -> Result<(String, Option<Vec<i32>>), CliError> {
    let Some((t, ps)) = text.rsplit_once(':') else {
        return Ok((text.to_string(), None));
    };
    let parts: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
    match parts {
        Ok(p) if !t.is_empty() && p.iter().all(|&x| x >= 0) => Ok((t.to_string(), Some(p))),
        _ => Err(CliError::usage(format!(
            "bad topic selection {text:?}: use TOPIC or TOPIC:0,1,2"
        ))),
    }
}

/// `key=value`.
pub fn parse_kv(text: &str) -> Result<(String, String), CliError> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::usage(format!("expected key=value, got {text:?}"))),
    }
}

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
    /// The group's committed offset (the default with --group).
    Stored,
    Offset(i64),
    /// This many records before the end of each partition.
    FromEnd(i64),
    /// The first record at or after this time (ms).
    Time(i64),
}

/// `beginning` | `end` | `stored` | `<offset>` | `-<n>` (n before the end) |
/// `@<time>` (ms or RFC 3339) | `ago:<duration>`.
pub fn parse_start(text: &str) -> Result<Start, CliError> {
    let t = text.trim();
    Ok(match t {
        "beginning" | "earliest" | "start" => Start::Beginning,
        "end" | "latest" => Start::End,
        "stored" | "committed" => Start::Stored,
        _ if t.starts_with('@') => Start::Time(parse_time_ms(&t[1..])?),
        _ if t.starts_with("ago:") => Start::Time(now_ms() - parse_duration_ms(&t[4..])?),
        _ if t.starts_with('-') => match t[1..].parse::<i64>() {
            Ok(n) if n >= 0 => Start::FromEnd(n),
            _ => return Err(bad_start(text)),
        },
        _ => match t.parse::<i64>() {
            Ok(n) if n >= 0 => Start::Offset(n),
            _ => return Err(bad_start(text)),
        },
    })
}

fn bad_start(text: &str) -> CliError {
    CliError::usage(format!(
        "bad start {text:?}: use beginning, end, stored, an offset (42), -N (N before the end), \
         @TIME (ms or RFC 3339) or ago:DURATION (ago:10m)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("2d").unwrap(), 172_800_000);
        assert_eq!(parse_duration_ms("PT10M").unwrap(), 600_000);
        assert_eq!(parse_duration_ms("P1DT1H").unwrap(), 90_000_000);
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time_ms("2023-11-14T23:13:20.250+01:00").unwrap(),
            1_700_000_000_250
        );
        assert_eq!(parse_time_ms("2023-11-14").unwrap(), 1_699_920_000_000);
        assert!(parse_time_ms("yesterday").is_err());
        assert!(parse_time_ms("2023-13-01").is_err());
    }

    #[test]
    fn starts_and_selections() {
        assert_eq!(parse_start("beginning").unwrap(), Start::Beginning);
        assert_eq!(parse_start("42").unwrap(), Start::Offset(42));
        assert_eq!(parse_start("-5").unwrap(), Start::FromEnd(5));
        assert_eq!(parse_start("@1000").unwrap(), Start::Time(1000));
        assert!(matches!(parse_start("ago:1m").unwrap(), Start::Time(_)));
        assert!(parse_start("soon").is_err());
        assert_eq!(
            parse_topic_partitions("t:0,2").unwrap(),
            ("t".into(), Some(vec![0, 2]))
        );
        assert_eq!(parse_topic_partitions("t").unwrap(), ("t".into(), None));
        assert!(parse_topic_partitions("t:x").is_err());
    }
}
