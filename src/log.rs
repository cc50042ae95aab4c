//! Progress log: one line per stage on stderr, as text or one JSON object per line.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::cli::LogFormat;

pub struct Log {
    format: LogFormat,
    start: Instant,
}

impl Log {
    pub fn new(format: LogFormat) -> Self {
        Log {
            format,
            start: Instant::now(),
        }
    }

    /// Logs one stage: `stage` is input / pipeline / write / publish / ..., `name` what it
    /// concerned, `fields` extra key-value pairs (numbers are logged unquoted in JSON).
    pub fn stage(&self, stage: &str, name: &str, took: Duration, fields: &[(&str, Field)]) {
        let line = match self.format {
            LogFormat::Text => {
                let mut s = format!(
                    "[{:>8.3}s] {stage:<9} {name:<18}",
                    self.start.elapsed().as_secs_f64()
                );
                for (k, v) in fields {
                    s.push_str(&format!(" {k}={}", v.text()));
                }
                s.push_str(&format!(" ({:.3}s)", took.as_secs_f64()));
                s
            }
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
                obj.insert("stage".into(), stage.into());
                obj.insert("name".into(), name.into());
                obj.insert(
                    "elapsed_ms".into(),
                    serde_json::Value::from(took.as_secs_f64() * 1000.0),
                );
                for (k, v) in fields {
                    obj.insert((*k).to_string(), v.json());
                }
                serde_json::Value::Object(obj).to_string()
            }
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

pub enum Field {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Field {
    fn text(&self) -> String {
        match self {
            Field::Int(i) => i.to_string(),
            Field::Float(f) => format!("{f:.6}"),
            Field::Text(t) => t.clone(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Field::Int(i) => (*i).into(),
            Field::Float(f) => (*f).into(),
            Field::Text(t) => t.clone().into(),
        }
    }
}
