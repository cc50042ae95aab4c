//! Progress log: one line per stage on stderr, as text or one JSON object per line. Every JSON
//! line has a `level` (`info`, `warn` or `error`), including the fatal error that ends a run.

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
        self.line(Level::Info, stage, name, took, fields);
    }

    /// Logs a warning about `name` (a stale input, for example).
    pub fn warn(&self, stage: &str, name: &str, fields: &[(&str, Field)]) {
        self.line(Level::Warn, stage, name, Duration::ZERO, fields);
    }

    fn line(
        &self,
        level: Level,
        stage: &str,
        name: &str,
        took: Duration,
        fields: &[(&str, Field)],
    ) {
        let line = match self.format {
            LogFormat::Text => {
                let mut s = format!(
                    "[{:>8.3}s] {}{stage:<9} {name:<18}",
                    self.start.elapsed().as_secs_f64(),
                    if level == Level::Warn { "WARN " } else { "" }
                );
                for (k, v) in fields {
                    s.push_str(&format!(" {k}={}", v.text()));
                }
                s.push_str(&format!(" ({:.3}s)", took.as_secs_f64()));
                terminal_safe(&s)
            }
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
                obj.insert("level".into(), level.name().into());
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Warn,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
        }
    }
}

/// The line that reports the error ending a command: `cxmetrics: <message>` as text, or one
/// JSON object with `level: error`, the exit code and the message.
pub fn fatal_line(format: LogFormat, message: &str, exit_code: i32) -> String {
    match format {
        LogFormat::Text => format!("cxmetrics: {}", terminal_safe(message)),
        LogFormat::Json => serde_json::json!({
            "ts": chrono::Utc::now().to_rfc3339(),
            "level": "error",
            "stage": "fatal",
            "exit_code": exit_code,
            "message": message,
        })
        .to_string(),
    }
}

/// `s` with control characters other than newlines and tabs shown as escapes, so that a
/// value from a job file or a file name cannot move the cursor or clear the screen.
pub fn terminal_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fatal_line_is_json_with_a_level_and_text_is_escaped() {
        let line = fatal_line(LogFormat::Json, "bad \u{1b}[2J thing", 3);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["message"], "bad \u{1b}[2J thing");
        let text = fatal_line(LogFormat::Text, "bad \u{1b}[2J\nnext", 3);
        assert_eq!(text, "cxmetrics: bad \\u{1b}[2J\nnext");
    }
}
