//! Gets a dataset the repository may not ship: download it (HTTP/HTTPS) or take it from a
//! local folder or archive, unpack it, check every file against the checksum manifest, and
//! move it into place in one rename. Everything happens in a staging folder beside the
//! destination, so a failed or interrupted fetch leaves no half dataset behind.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{Dataset, FileSum};
use crate::error::{DataError, Result};
use crate::verify::{sha256_file, verify_files};

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// A URL, folder or archive to take the dataset from instead of its default source.
    pub from: Option<String>,
    /// Fetch again even when a verified copy is in place.
    pub force: bool,
    /// Draw a progress bar while downloading.
    pub progress: bool,
}

/// What a fetch did.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The dataset's name.
    pub dataset: String,
    /// Where it now is.
    pub path: PathBuf,
    /// The URL, folder or archive it came from (`null` when it was already in place).
    pub source: Option<String>,
    /// Files checked and placed.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// A verified copy was already there; nothing was fetched.
    pub already_present: bool,
}

/// Fetches `dataset` into its place in the data folder.
pub fn fetch(dataset: &Dataset, opts: &FetchOptions) -> Result<FetchReport> {
    if dataset.shipped {
        return Err(DataError::Shipped {
            name: dataset.name.clone(),
            path: dataset.path.clone(),
        });
    }
    fetch_files(
        &dataset.name,
        &dataset.manifest()?,
        &dataset.location(),
        &dataset.source,
        opts,
    )
}

/// Fetches the files of `manifest` from `opts.from` (else `default_source`) into `dest`.
/// Only the files the manifest names are kept: an upstream archive with more (a README,
/// more people) yields exactly the dataset the checksums describe.
pub fn fetch_files(
    name: &str,
    manifest: &[FileSum],
    dest: &Path,
    default_source: &str,
    opts: &FetchOptions,
) -> Result<FetchReport> {
    let parent = dest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
    let _lock = lock(&parent.join(format!(".{name}.fetch.lock")), name)?;
    remove_stale_staging(&parent, name);

    if dest.exists() && !opts.force {
        let report = verify_files(name, manifest, dest)?;
        if report.ok() {
            return Ok(FetchReport {
                dataset: name.to_string(),
                path: dest.to_path_buf(),
                source: None,
                files: report.files,
                bytes: report.bytes,
                already_present: true,
            });
        }
        tracing::warn!(
            "{}: the copy there does not verify; fetching it again",
            dest.display()
        );
    }

    let source = opts.from.as_deref().unwrap_or(default_source).to_string();
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix(name))
        .tempdir_in(&parent)
        .map_err(|e| DataError::io(&parent, e))?;
    let unpacked = staging.path().join("unpacked");
    let tree = if is_url(&source) {
        let file = staging.path().join("download");
        tracing::info!("downloading {source}");
        crate::download::download(&source, &file, opts.progress)?;
        unpack_into(&file, &unpacked, &source)?
    } else {
        let p = Path::new(&source);
        if p.is_dir() {
            p.to_path_buf()
        } else if p.is_file() {
            unpack_into(p, &unpacked, &source)?
        } else {
            return Err(DataError::Source {
                input: p.to_path_buf(),
                message: "no such file or folder (and not an http:// or https:// URL)".into(),
            });
        }
    };
    let root = find_root(name, manifest, &tree, &source)?;

    let staged = staging.path().join("dataset");
    let mut changed = Vec::new();
    let mut bytes = 0u64;
    for f in manifest {
        let from = root.join(&f.path);
        let to = staged.join(&f.path);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        }
        std::fs::copy(&from, &to).map_err(|e| DataError::io(&from, e))?;
        let (hash, len) = sha256_file(&to)?;
        bytes += len;
        if hash != f.sha256 {
            changed.push(f.path.clone());
        }
    }
    if !changed.is_empty() {
        return Err(DataError::Mismatch {
            dataset: name.to_string(),
            root: PathBuf::from(&source),
            missing: Vec::new(),
            changed,
        });
    }

    // Into place: the old copy (if any) moves aside into the staging folder, which is
    // removed when it goes out of scope.
    if dest.exists() {
        std::fs::rename(dest, staging.path().join("old")).map_err(|e| DataError::io(dest, e))?;
    }
    std::fs::rename(&staged, dest).map_err(|e| DataError::io(dest, e))?;
    Ok(FetchReport {
        dataset: name.to_string(),
        path: dest.to_path_buf(),
        source: Some(source),
        files: manifest.len(),
        bytes,
        already_present: false,
    })
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn staging_prefix(name: &str) -> String {
    format!(".fetch-{name}-")
}

/// Removes staging folders that an interrupted fetch of `name` left (the caller holds the
/// fetch lock, so none of them is in use).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = staging_prefix(name);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(
                "removing {} (left by an interrupted fetch)",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// An exclusive lock held while the returned file lives; a second fetch of the same
/// dataset waits for the first.
fn lock(path: &Path, name: &str) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| DataError::io(path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!("another fetch of `{name}` is running; waiting for it");
            file.lock().map_err(|e| DataError::io(path, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(DataError::io(path, e)),
    }
    Ok(file)
}

fn unpack_into(archive: &Path, dest: &Path, source: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    crate::archive::unpack(archive, dest).map_err(|e| match e {
        DataError::Source { message, .. } => DataError::Source {
            input: PathBuf::from(source),
            message,
        },
        other => other,
    })?;
    Ok(dest.to_path_buf())
}

/// The folder under `tree` (itself or a sub-folder up to two levels down, as archives wrap
/// their content in `ml-100k/` or `att_faces/`) that holds every file of the manifest.
fn find_root(name: &str, manifest: &[FileSum], tree: &Path, source: &str) -> Result<PathBuf> {
    fn subdirs(dir: &Path) -> Vec<PathBuf> {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        subs.sort();
        subs
    }
    let level1 = subdirs(tree);
    let level2: Vec<PathBuf> = level1.iter().flat_map(|d| subdirs(d)).collect();
    let candidates: Vec<PathBuf> = std::iter::once(tree.to_path_buf())
        .chain(level1)
        .chain(level2)
        .collect();
    let mut best: Option<(usize, &PathBuf)> = None;
    for dir in &candidates {
        let present = manifest
            .iter()
            .filter(|f| dir.join(&f.path).is_file())
            .count();
        if present == manifest.len() {
            return Ok(dir.clone());
        }
        if best.is_none_or(|(n, _)| present > n) {
            best = Some((present, dir));
        }
    }
    let best = best
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| tree.to_path_buf());
    Err(DataError::Mismatch {
        dataset: name.to_string(),
        root: PathBuf::from(source),
        missing: manifest
            .iter()
            .filter(|f| !best.join(&f.path).is_file())
            .map(|f| f.path.clone())
            .collect(),
        changed: Vec::new(),
    })
}
