//! The password file (`~/.pgpass`, or the file `PGPASSFILE` names), read as
//! PostgreSQL's own clients read it: lines of
//! `hostname:port:database:username:password`, `*` matching any value, `\:`
//! and `\\` escaping, `#` starting a comment, the first matching line
//! winning.
//!
//! This module owns the file's parsing and the check of its permissions. It
//! must not log or return the password in any error.

use std::path::{Path, PathBuf};

/// The password file to read: `PGPASSFILE`, else `~/.pgpass`.
pub(super) fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"))
}

/// The password `path` gives for this server, database and user; `Ok(None)`
/// when the file does not exist or has no matching line. A file others can
/// read is an error (PostgreSQL's clients skip it; skipping would leave the
/// user with an authentication failure and no reason).
pub(super) fn lookup(
    path: &Path,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading password file {}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("reading password file {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "password file {} has group or world access (mode {:o}); make it private \
                 (chmod 600)",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields = split(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w);
        if matches {
            return Ok(Some(fields[4..].join(":")));
        }
    }
    Ok(None)
}

/// The `:`-separated fields of a line, with `\:` and `\\` unescaped. A `*`
/// written as `\*` is a literal star, kept as is (it then matches only a
/// value `\*`, as in PostgreSQL's clients).
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (':' | '\\')) => fields.last_mut().expect("one field").push(n),
                Some(n) => {
                    let f = fields.last_mut().expect("one field");
                    f.push('\\');
                    f.push(n);
                }
                None => {}
            },
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        f
    }

    #[test]
    fn the_first_matching_line_wins_with_stars_and_escapes() {
        let f = file(
            "# comment\n\
             db.example:5432:shop:app:first\n\
             127.0.0.1:*:*:app:pa\\:ss\\\\word:tail\n\
             *:*:*:*:fallback\n",
            0o600,
        );
        let get = |h: &str, p: u16, d: &str, u: &str| lookup(f.path(), h, p, d, u).unwrap();
        assert_eq!(
            get("db.example", 5432, "shop", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            get("127.0.0.1", 6543, "any", "app").as_deref(),
            Some("pa:ss\\word:tail")
        );
        assert_eq!(
            get("db.example", 5433, "shop", "app").as_deref(),
            Some("fallback")
        );
        let none = file("h:1:d:u:p\n", 0o600);
        assert_eq!(lookup(none.path(), "h", 2, "d", "u").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            lookup(&dir.path().join("missing"), "h", 1, "d", "u").unwrap(),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_without_its_contents() {
        let f = file("*:*:*:*:secret\n", 0o644);
        let err = lookup(f.path(), "h", 1, "d", "u").unwrap_err();
        assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
        assert!(!err.contains("secret"));
    }
}
