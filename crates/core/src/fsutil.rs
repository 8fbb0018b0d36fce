//! Atomic writes: a crash never leaves a file that looks complete but is not.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{CoreError, Result};

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    let mut tmp = readable(&mut tempfile::Builder::new(), 0o644)
        .tempfile_in(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    tmp.write_all(bytes).map_err(|e| CoreError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| CoreError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| CoreError::io(path, e.error))?;
    Ok(())
}

/// Temporary files and folders that end up as outputs are created readable by others
/// (0644 / 0755 less the umask, like any file a program writes), not tempfile's private
/// 0600 / 0700: a model written by one user must be loadable by the server's.
#[cfg(unix)]
fn readable<'a, 'b>(
    b: &'b mut tempfile::Builder<'a, 'a>,
    mode: u32,
) -> &'b mut tempfile::Builder<'a, 'a> {
    use std::os::unix::fs::PermissionsExt;
    b.permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn readable<'a, 'b>(
    b: &'b mut tempfile::Builder<'a, 'a>,
    _mode: u32,
) -> &'b mut tempfile::Builder<'a, 'a> {
    b
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| CoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Lets `fill` write into a fresh temporary directory next to `dest`, then renames it to
/// `dest` (replacing an older one). If `fill` fails, nothing appears at `dest`.
pub fn write_dir_atomic<E>(
    dest: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<CoreError>,
{
    let parent = parent_dir(dest);
    std::fs::create_dir_all(&parent).map_err(|e| CoreError::io(&parent, e))?;
    let tmp = readable(tempfile::Builder::new().prefix(".tmp-"), 0o755)
        .tempdir_in(&parent)
        .map_err(|e| CoreError::io(&parent, e))?;
    fill(tmp.path())?;
    let staged = tmp.keep();
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| CoreError::io(dest, e))?;
    }
    std::fs::rename(&staged, dest).map_err(|e| CoreError::io(dest, e))?;
    Ok(())
}

/// Copies every file of `src` into `dest` (one level, or recursively for sub-directories).
pub fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| CoreError::io(dest, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| CoreError::io(src, e))? {
        let entry = entry.map_err(|e| CoreError::io(src, e))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        if from.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| CoreError::io(&from, e))?;
        }
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_json_atomic(&p, &serde_json::json!({"x": 1})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"x": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap();
        assert_eq!(v["x"], 2);
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn failed_directory_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let res: std::result::Result<(), CoreError> = write_dir_atomic(&dest, |tmp| {
            std::fs::write(tmp.join("half"), b"x").unwrap();
            Err(CoreError::InvalidConfig {
                name: "x",
                message: "boom".into(),
            })
        });
        assert!(res.is_err());
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
