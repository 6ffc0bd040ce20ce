//! How the commands print: aligned tables for people (the default), JSON for scripts
//! (`--output json`: one document on stdout; errors as a JSON object on stderr), and a
//! progress line on stderr when it is a terminal.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Rows under headers, columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                if i + 1 == n {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.headers);
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// A JSON value as a cell, `-` for null.
pub fn or_dash(v: &Value) -> String {
    if v.is_null() {
        "-".to_string()
    } else {
        v.to_string()
    }
}

/// The members of a described group (`member_id`, `client_id`, `host`), with a last
/// column `last` made by `cell`; empty when there are none.
pub fn members_table(members: &Value, last: &str, cell: impl Fn(&Value) -> String) -> String {
    let Some(list) = members.as_array().filter(|m| !m.is_empty()) else {
        return String::new();
    };
    let mut t = Table::new(&["MEMBER", "CLIENT-ID", "HOST", last]);
    for m in list {
        t.row(vec![
            m["member_id"].as_str().unwrap_or("").into(),
            m["client_id"].as_str().unwrap_or("").into(),
            m["host"].as_str().unwrap_or("").into(),
            cell(m),
        ]);
    }
    format!("\n{}", t.render())
}

/// Print the result of a command: `json` as is, or the human text `text()` makes.
pub fn emit(format: Format, json: &Value, text: impl FnOnce() -> String) {
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(json).unwrap_or_default()
        ),
        Format::Table => write!(out, "{}", text()),
    };
    let _ = out.flush();
}

/// A one-line progress counter on stderr, only when stderr is a terminal; at most ten
/// redraws a second.
pub struct Progress {
    on: bool,
    last: std::time::Instant,
    label: String,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
            label: label.to_string(),
        }
    }

    pub fn update(&mut self, done: u64, total: Option<u64>) {
        if !self.on || self.last.elapsed().as_millis() < 100 {
            return;
        }
        self.last = std::time::Instant::now();
        let text = match total {
            Some(t) if t > 0 => format!(
                "\r{}: {done}/{t} ({:.0}%)",
                self.label,
                done as f64 * 100.0 / t as f64
            ),
            _ => format!("\r{}: {done}", self.label),
        };
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    pub fn finish(&mut self) {
        if self.on {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }
}

/// Bytes as people read them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
