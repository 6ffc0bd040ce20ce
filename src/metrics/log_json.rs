//! `--log-format json`: one JSON object a line for log shippers (Loki, Vector, Fluent
//! Bit, Elasticsearch), with the same events as the human format:
//!
//! ```text
//! {"ts":"2024-05-01T12:00:00.123456Z","level":"INFO","target":"sluice::server","thread":"shard-0","message":"starting sluice","topics":3,"shards":2}
//! ```
//!
//! Fields keep their types (numbers stay numbers); the message is `message`; the names
//! of the spans an event is in, outermost first, are `spans`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `--log-format json`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, v: Value) {
        let name = match field.name() {
            // Never let a field overwrite the envelope.
            n @ ("ts" | "level" | "target" | "thread" | "spans") => format!("field.{n}"),
            n => n.to_string(),
        };
        self.0.insert(name, v);
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

/// One event as a JSON object (without the time, which the caller adds).
pub fn event_object(event: &Event<'_>) -> Map<String, Value> {
    let meta = event.metadata();
    let mut obj = Map::new();
    obj.insert("level".into(), Value::String(meta.level().to_string()));
    obj.insert("target".into(), Value::String(meta.target().to_string()));
    if let Some(name) = std::thread::current().name() {
        obj.insert("thread".into(), Value::String(name.to_string()));
    }
    event.record(&mut Fields(&mut obj));
    obj
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let mut obj = Map::new();
        obj.insert("ts".into(), Value::String(ts));
        obj.extend(event_object(event));
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|s| Value::String(s.name().to_string()))
                .collect();
            if !spans.is_empty() {
                obj.insert("spans".into(), Value::Array(spans));
            }
        }
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_is_one_json_line_with_typed_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                topics = 3,
                shards = 2usize,
                ok = true,
                name = "x",
                "starting sluice"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["message"], "starting sluice");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["topics"], 3);
        assert_eq!(v["shards"], 2);
        assert_eq!(v["ok"], true);
        assert_eq!(v["name"], "x");
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        assert!(v["target"].as_str().unwrap().contains("log_json"));
    }
}
