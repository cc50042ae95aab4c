//! The one collector of job-file problems. Every check, structural (in `config`) or semantic
//! (in `validate` and in each pipeline's own parameter checks), reports into it by dotted path;
//! the line is found from the job file's text, and all problems are reported together.

use crate::error::ConfigProblem;

/// Problems found in one job file, in the order found.
#[derive(Debug)]
pub struct Problems<'t> {
    text: &'t str,
    list: Vec<ConfigProblem>,
}

impl<'t> Problems<'t> {
    /// A collector for the job file whose text is `text`.
    pub fn new(text: &'t str) -> Self {
        Problems {
            text,
            list: Vec::new(),
        }
    }

    /// A problem at the dotted key path `path` (`pipelines.churn.period`; empty for the whole
    /// file).
    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        let segments: Vec<String> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('.').map(String::from).collect()
        };
        let line = locate(self.text, &segments);
        self.list.push(ConfigProblem {
            path: path.to_string(),
            line,
            message: message.into(),
        });
    }

    /// A problem whose line is already known (from the YAML parser).
    pub fn push_at(&mut self, path: &str, line: Option<usize>, message: impl Into<String>) {
        self.list.push(ConfigProblem {
            path: path.to_string(),
            line,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The problems, ordered by line (those without a line last), as found within a line.
    pub fn into_sorted(self) -> Vec<ConfigProblem> {
        let mut list = self.list;
        list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        list
    }

    /// The problems in the order found.
    pub fn into_vec(self) -> Vec<ConfigProblem> {
        self.list
    }

    pub fn text(&self) -> &'t str {
        self.text
    }
}

/// Best-effort 1-based line of a dotted key path: each segment is searched for as a mapping
/// key at or after the line where its parent was found.
pub fn locate(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut found = None;
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            continue;
        }
        let at = (start..lines.len()).find(|&i| line_has_key(lines[i], seg))?;
        found = Some(at + 1);
        start = at;
    }
    found
}

fn line_has_key(line: &str, key: &str) -> bool {
    let code = line.split(" #").next().unwrap_or(line);
    code.match_indices(key).any(|(i, _)| {
        let before = code[..i].trim_end();
        let after = code[i + key.len()..].trim_start();
        let before_ok = before.is_empty()
            || before.ends_with('{')
            || before.ends_with(',')
            || before.ends_with('-');
        before_ok && after.starts_with(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_by_path() {
        let text = "name: x\npipelines:\n  churn: { period: day }\n  survey_scores:\n    by: [a]\n";
        let mut p = Problems::new(text);
        p.push("pipelines.survey_scores.by", "bad");
        p.push("pipelines.churn.period", "bad");
        p.push("", "whole file");
        let lines: Vec<Option<usize>> = p.into_sorted().iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(3), Some(5), None]);
    }
}
