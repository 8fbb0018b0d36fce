//! Unpacks the archive formats datasets come in: zip, tar.gz (tgz) and plain tar, told
//! apart by their first bytes rather than by the file name.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// An archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// PKZIP (`PK\x03\x04`).
    Zip,
    /// gzip-compressed tar.
    TarGz,
    /// Uncompressed POSIX tar (`ustar` at byte 257).
    Tar,
}

/// The format of the archive at `path`, from its magic bytes.
pub fn sniff(path: &Path) -> Result<ArchiveKind> {
    let mut head = [0u8; 262];
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..]).map_err(|e| DataError::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(ArchiveKind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(ArchiveKind::TarGz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(ArchiveKind::Tar)
    } else {
        Err(DataError::Source {
            input: path.to_path_buf(),
            message: format!(
                "not a zip, tar.gz or tar archive ({n} bytes{})",
                if n == 0 { ", empty" } else { "" }
            ),
        })
    }
}

/// Unpacks `archive` into the folder `dest` (which must exist). Entries that would land
/// outside `dest` (absolute paths, `..`) are refused by both readers.
pub fn unpack(archive: &Path, dest: &Path) -> Result<ArchiveKind> {
    let kind = sniff(archive)?;
    let bad = |message: String| DataError::Source {
        input: archive.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    match kind {
        ArchiveKind::Zip => {
            let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
                .map_err(|e| bad(format!("unreadable zip archive: {e}")))?;
            zip.extract(dest)
                .map_err(|e| bad(format!("zip archive could not be unpacked: {e}")))?;
        }
        ArchiveKind::TarGz => {
            let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
            tar::Archive::new(gz)
                .unpack(dest)
                .map_err(|e| bad(format!("tar.gz archive could not be unpacked: {e}")))?;
        }
        ArchiveKind::Tar => {
            tar::Archive::new(std::io::BufReader::new(file))
                .unpack(dest)
                .map_err(|e| bad(format!("tar archive could not be unpacked: {e}")))?;
        }
    }
    Ok(kind)
}
