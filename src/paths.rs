//! Path helpers: joining job-relative paths without leaving `dir/../` noise in logs, errors and
//! the manifest.

use std::path::{Component, Path, PathBuf};

/// `base.join(rel)` with `.` and `name/..` pairs removed lexically (no file system access, so
/// it also works for paths that do not exist yet).
pub fn join_clean(base: &Path, rel: &str) -> PathBuf {
    let joined = base.join(rel);
    let mut out: Vec<Component> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_dot_and_parent_pairs() {
        assert_eq!(
            join_clean(Path::new("jobs"), "../out/x"),
            PathBuf::from("out/x")
        );
        assert_eq!(
            join_clean(Path::new("a/b"), "./c/../d"),
            PathBuf::from("a/b/d")
        );
        assert_eq!(join_clean(Path::new(""), "../x"), PathBuf::from("../x"));
        assert_eq!(join_clean(Path::new("/"), "../x"), PathBuf::from("/x"));
        assert_eq!(
            join_clean(Path::new("jobs"), "/abs/p"),
            PathBuf::from("/abs/p")
        );
        assert_eq!(join_clean(Path::new("jobs"), ".."), PathBuf::from("."));
    }
}
