//! TEMPORARY in-memory stand-in for the storage engine API (replaced by the real log/ at merge).
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlushPolicy {
    Always,
    Interval(Duration),
    Never,
}
impl std::str::FromStr for FlushPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => s
                .strip_prefix("interval:")
                .and_then(|m| m.parse().ok())
                .map(|m| Self::Interval(Duration::from_millis(m)))
                .ok_or_else(|| format!("bad flush policy {s}")),
        }
    }
}
impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => write!(f, "always"),
            Self::Never => write!(f, "never"),
            Self::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    pub flush: FlushPolicy,
    pub max_queue_bytes: Option<u64>,
    pub index_interval_bytes: usize,
}
impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::Never,
            max_queue_bytes: None,
            index_interval_bytes: 4096,
        }
    }
}
#[derive(Debug)]
pub struct LogError {
    pub code: i16,
    pub msg: String,
}
impl LogError {
    pub fn error_code(&self) -> i16 {
        self.code
    }
}
impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.msg)
    }
}
impl std::error::Error for LogError {}
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}
pub struct RetentionReport;
pub struct FileRange;
pub struct FetchSlice {
    pub data: Vec<u8>,
}
impl FetchSlice {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub async fn read_to_vec(&self, out: &mut Vec<u8>) -> Result<(), LogError> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
pub struct PartitionLog {
    batches: RefCell<Vec<(i64, i64, Vec<u8>)>>,
    hwm: Cell<i64>,
    cfg: RefCell<LogConfig>,
    waiters: RefCell<Vec<std::task::Waker>>,
}
impl PartitionLog {
    pub async fn open(_dir: &Path, config: LogConfig) -> Result<Rc<PartitionLog>, LogError> {
        Ok(Rc::new(PartitionLog {
            batches: RefCell::new(vec![]),
            hwm: Cell::new(0),
            cfg: RefCell::new(config),
            waiters: RefCell::new(vec![]),
        }))
    }
    pub async fn append(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let mut pos = 0;
        let base = self.hwm.get();
        let mut next = base;
        while pos + 61 <= records.len() {
            let len =
                i32::from_be_bytes(records[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
            if pos + len > records.len() {
                return Err(LogError {
                    code: 2,
                    msg: "short".into(),
                });
            }
            let mut b = records[pos..pos + len].to_vec();
            let crc = u32::from_be_bytes(b[17..21].try_into().unwrap());
            if crc32c::crc32c(&b[21..]) != crc {
                return Err(LogError {
                    code: 2,
                    msg: "crc".into(),
                });
            }
            let lod = i32::from_be_bytes(b[23..27].try_into().unwrap()) as i64;
            let maxts = i64::from_be_bytes(b[35..43].try_into().unwrap());
            b[0..8].copy_from_slice(&next.to_be_bytes());
            self.batches.borrow_mut().push((next, maxts, b));
            next += lod + 1;
            pos += len;
        }
        if next == base {
            return Err(LogError {
                code: 87,
                msg: "empty".into(),
            });
        }
        self.hwm.set(next);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_append_time_ms: -1,
            log_start_offset: 0,
        })
    }
    pub async fn wait_durable(&self, _o: i64) -> Result<(), LogError> {
        Ok(())
    }
    pub fn high_watermark(&self) -> i64 {
        self.hwm.get()
    }
    pub fn log_start_offset(&self) -> i64 {
        0
    }
    pub fn size_bytes(&self) -> u64 {
        self.batches.borrow().iter().map(|b| b.2.len() as u64).sum()
    }
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchSlice, LogError> {
        if offset < 0 || offset > self.hwm.get() {
            return Err(LogError {
                code: 1,
                msg: "oor".into(),
            });
        }
        let bs = self.batches.borrow();
        let mut data = vec![];
        for (i, b) in bs.iter().enumerate() {
            let next = bs.get(i + 1).map(|n| n.0).unwrap_or(self.hwm.get());
            if next <= offset {
                continue;
            }
            if !data.is_empty() && data.len() + b.2.len() > max_bytes {
                break;
            }
            data.extend_from_slice(&b.2);
            if data.len() >= max_bytes {
                break;
            }
        }
        Ok(FetchSlice { data })
    }
    pub async fn wait_for_append(&self, offset: i64) {
        std::future::poll_fn(|cx| {
            if self.hwm.get() > offset {
                std::task::Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        Ok(self
            .batches
            .borrow()
            .iter()
            .find(|b| b.1 >= ts)
            .map(|b| (b.0, b.1)))
    }
    pub async fn delete_records(&self, before: i64) -> Result<i64, LogError> {
        Ok(before)
    }
    pub async fn enforce_retention(&self, _now: i64) -> Result<RetentionReport, LogError> {
        Ok(RetentionReport)
    }
    pub fn config(&self) -> LogConfig {
        self.cfg.borrow().clone()
    }
    pub fn set_config(&self, c: LogConfig) {
        *self.cfg.borrow_mut() = c;
    }
    pub async fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub async fn close(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub async fn remove(&self) -> Result<(), LogError> {
        Ok(())
    }
}
