//! Checks a dataset's files against its checksum manifest.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{Dataset, FileSum};
use crate::error::{DataError, Result};

/// What [`verify_at`] found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The dataset's name.
    pub dataset: String,
    /// The folder that was checked.
    pub root: PathBuf,
    /// Files in the manifest.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Manifest files that are absent.
    pub missing: Vec<String>,
    /// Manifest files whose sha256 differs (changed or truncated).
    pub changed: Vec<String>,
}

impl VerifyReport {
    /// Every file present with the right checksum.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty()
    }

    /// No file of the manifest is present at all.
    pub fn absent(&self) -> bool {
        self.missing.len() == self.files
    }

    /// `Ok(self)` when every file matches, else a [`DataError::Mismatch`] naming the files.
    pub fn into_result(self) -> Result<Self> {
        if self.ok() {
            Ok(self)
        } else {
            Err(DataError::Mismatch {
                dataset: self.dataset,
                root: self.root,
                missing: self.missing,
                changed: self.changed,
            })
        }
    }
}

/// Hashes every file of `dataset`'s manifest under `root`.
pub fn verify_at(dataset: &Dataset, root: &Path) -> Result<VerifyReport> {
    verify_files(&dataset.name, &dataset.manifest()?, root)
}

/// Hashes every file of `manifest` under `root`; `name` labels the report.
pub fn verify_files(name: &str, manifest: &[FileSum], root: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        dataset: name.to_string(),
        root: root.to_path_buf(),
        files: manifest.len(),
        bytes: 0,
        missing: Vec::new(),
        changed: Vec::new(),
    };
    for FileSum { path, sha256 } in manifest {
        let file = root.join(path);
        if !file.is_file() {
            report.missing.push(path.clone());
            continue;
        }
        let (hash, len) = sha256_file(&file)?;
        report.bytes += len;
        if &hash != sha256 {
            report.changed.push(path.clone());
        }
    }
    Ok(report)
}

/// Whether every file of the manifest exists under `root` (no hashing: a quick check for
/// "is the dataset there at all").
pub fn present_at(dataset: &Dataset, root: &Path) -> Result<bool> {
    Ok(dataset
        .manifest()?
        .iter()
        .all(|f| root.join(&f.path).is_file()))
}

/// The lower-case hex sha256 of a file and its length in bytes.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    sha256_reader(&mut f).map_err(|e| DataError::io(path, e))
}

/// The lower-case hex sha256 of everything `r` yields, and the byte count.
pub fn sha256_reader(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), len))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_string() {
        // `printf abc | sha256sum`
        let (h, n) = sha256_reader(&mut &b"abc"[..]).expect("hash");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
    }
}
