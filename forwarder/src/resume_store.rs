//! The resume token of a named tunnel, kept in a small file so that a
//! restarted `ttf --name` (after a crash or a kill) proves it is the same
//! holder: the edge keeps a dropped holder's name for it during the resume
//! grace and refuses everyone else (see `tunnel_proto::names::check_released`).
//!
//! Directory: `$TTF_STATE_DIR`, else `$XDG_STATE_HOME/ttf`, else
//! `$HOME/.local/state/ttf`; one file per endpoint and name, mode 0600.
//! Without `--name` nothing is stored (a random id is not worth keeping).
//! A file that cannot be read or written is reported once and ignored.

use std::path::{Path, PathBuf};

use tunnel_proto::v2;

/// Where the token of one named tunnel lives.
#[derive(Debug, Clone)]
pub struct ResumeStore {
    path: Option<PathBuf>,
    name: Option<String>,
}

/// The state directory from the environment, if any.
fn state_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("TTF_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_STATE_HOME").map(|d| Path::new(&d).join("ttf")))
        .or_else(|| var("HOME").map(|d| Path::new(&d).join(".local/state/ttf")))
}

/// A file name for `endpoint` + `name`: the endpoint's letters and digits
/// kept, everything else `_`.
fn file_name(endpoint: &str, name: &str) -> String {
    let endpoint: String = endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{name}@{endpoint}.resume")
}

impl ResumeStore {
    /// The store of tunnel `name` on `endpoint` (nothing without a name).
    pub fn new(endpoint: &str, name: Option<&str>) -> Self {
        Self::in_dir(state_dir(), endpoint, name)
    }

    fn in_dir(dir: Option<PathBuf>, endpoint: &str, name: Option<&str>) -> Self {
        let path = name.and_then(|n| Some(dir?.join(file_name(endpoint, n))));
        Self {
            path,
            name: name.map(str::to_string),
        }
    }

    /// The stored token, when it belongs to the requested name.
    pub fn load(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.path.as_ref()?).ok()?;
        let token = text.trim();
        (v2::resume_token_id(token) == self.name.as_deref()).then(|| token.to_string())
    }

    /// Keep `token` for the next start.
    pub fn save(&self, token: &str) {
        let Some(path) = &self.path else { return };
        if let Err(e) = write_private(path, token) {
            eprintln!(
                "Cannot keep the resume token in {}: {e}; a restarted ttf may have to wait for its name",
                path.display()
            );
        }
    }

    /// Forget the token (the edge refused it).
    pub fn clear(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_per_name_and_only_its_own_is_loaded() {
        let dir = std::env::temp_dir().join(format!("ttf-resume-test-{}", std::process::id()));
        let store =
            ResumeStore::in_dir(Some(dir.clone()), "ws://h:1/_tunnel", Some("demodash0001"));
        assert_eq!(store.load(), None);
        let token = format!("demodash0001.{}", "ab".repeat(16));
        store.save(&token);
        assert_eq!(store.load(), Some(token.clone()));
        let other =
            ResumeStore::in_dir(Some(dir.clone()), "ws://h:1/_tunnel", Some("otherdash001"));
        assert_eq!(other.load(), None);
        // A token of another id in the file is not presented.
        other.save(&token);
        assert_eq!(other.load(), None);
        store.clear();
        assert_eq!(store.load(), None);
        let unnamed = ResumeStore::in_dir(Some(dir.clone()), "ws://h:1/_tunnel", None);
        unnamed.save(&token);
        assert_eq!(unnamed.load(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
