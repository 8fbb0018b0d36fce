//! The datasets the shipped pipelines read (`datasets/catalog.toml`) and the checksum
//! manifest of each (`datasets/checksums/<name>.sha256`), both compiled into the binary so
//! that `profundo data` works from any directory.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

const CATALOG_FILE: &str = "datasets/catalog.toml";
const CATALOG: &str = include_str!("../../../datasets/catalog.toml");

/// `(dataset name, sha256sum-format manifest)`, one per catalogue entry.
const MANIFESTS: &[(&str, &str)] = &[
    (
        "fsdd",
        include_str!("../../../datasets/checksums/fsdd.sha256"),
    ),
    (
        "movietweetings-10k",
        include_str!("../../../datasets/checksums/movietweetings-10k.sha256"),
    ),
    (
        "tatoeba-spa-eng",
        include_str!("../../../datasets/checksums/tatoeba-spa-eng.sha256"),
    ),
    (
        "orl",
        include_str!("../../../datasets/checksums/orl.sha256"),
    ),
    (
        "ml-100k",
        include_str!("../../../datasets/checksums/ml-100k.sha256"),
    ),
    (
        "face-photos",
        include_str!("../../../datasets/checksums/face-photos.sha256"),
    ),
    (
        "dlib-faces",
        include_str!("../../../datasets/checksums/dlib-faces.sha256"),
    ),
    (
        "gtsrb",
        include_str!("../../../datasets/checksums/gtsrb.sha256"),
    ),
];

/// One dataset as the catalogue describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Short name used on the command line (`profundo data fetch orl`).
    pub name: String,
    /// What it is, in a few words.
    pub title: String,
    /// The domain that uses it (`speech`, `faces`, ...).
    pub domain: String,
    /// The licence, as short as it can be said.
    pub licence: String,
    /// Whether the repository ships it under `datasets/`.
    pub shipped: bool,
    /// Folder under `datasets/` (shipped) or under the data folder (not shipped).
    pub path: String,
    /// Where it comes from: the upstream page, or the archive `fetch` downloads by default.
    pub source: String,
    /// The shipped pipelines (file stems under `pipelines/`) that read it.
    pub pipelines: Vec<String>,
}

/// One line of a checksum manifest: a file relative to the dataset folder and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    /// Path relative to the dataset folder, `/`-separated.
    pub path: String,
    /// Lower-case hex sha256.
    pub sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    dataset: Vec<Dataset>,
}

/// Every dataset the shipped pipelines read.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// In the catalogue's order.
    pub datasets: Vec<Dataset>,
}

impl Catalog {
    /// The catalogue compiled into this build.
    pub fn builtin() -> Result<Self> {
        let file: CatalogFile = toml::from_str(CATALOG).map_err(|e| DataError::Catalog {
            file: CATALOG_FILE.into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            datasets: file.dataset,
        })
    }

    /// The dataset called `name`, or an error listing the known names (with a suggestion
    /// when one is a near miss).
    pub fn get(&self, name: &str) -> Result<&Dataset> {
        if let Some(d) = self.datasets.iter().find(|d| d.name == name) {
            return Ok(d);
        }
        let near = self
            .datasets
            .iter()
            .find(|d| {
                d.name.contains(name)
                    || name.contains(d.name.as_str())
                    || strsim::levenshtein(&d.name, name) <= 2
            })
            .map(|d| format!(" (did you mean `{}`?)", d.name))
            .unwrap_or_default();
        Err(DataError::Unknown {
            name: name.to_string(),
            suggestion: near,
            known: self
                .datasets
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

impl Dataset {
    /// The files of this dataset with their sha256, from its compiled-in manifest.
    pub fn manifest(&self) -> Result<Vec<FileSum>> {
        let file = format!("datasets/checksums/{}.sha256", self.name);
        let text = MANIFESTS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, t)| *t)
            .ok_or_else(|| DataError::Catalog {
                file: file.clone(),
                message: "no checksum manifest compiled in for this dataset".into(),
            })?;
        parse_manifest(text, &file)
    }
}

/// Parses `sha256sum` output: `<64 hex>  <relative path>` per line (`*` before the path,
/// binary mode, is accepted). Absolute paths and `..` are refused: a manifest only names
/// files inside its dataset.
pub fn parse_manifest(text: &str, file: &str) -> Result<Vec<FileSum>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: &str| DataError::Catalog {
            file: file.to_string(),
            message: format!("line {}: {message}: `{line}`", i + 1),
        };
        let (hash, path) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `<sha256>  <path>`"))?;
        let path = path.trim_start_matches(' ').trim_start_matches('*');
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not a sha256 (64 hex digits)"));
        }
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(bad("the path must be relative, inside the dataset"));
        }
        out.push(FileSum {
            path: path.to_string(),
            sha256: hash.to_ascii_lowercase(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_has_a_manifest_and_every_manifest_a_dataset() {
        let c = Catalog::builtin().expect("the compiled-in catalogue parses");
        assert_eq!(c.datasets.len(), MANIFESTS.len());
        for d in &c.datasets {
            let files = d.manifest().expect("manifest parses");
            assert!(!files.is_empty(), "{}: empty manifest", d.name);
        }
        assert_eq!(c.get("orl").expect("orl").path, "faces/orl");
        assert_eq!(
            c.get("orl").expect("orl").manifest().expect("orl").len(),
            320
        );
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones_and_suggests_a_near_miss() {
        let c = Catalog::builtin().expect("catalogue");
        let e = c.get("ml100k").expect_err("unknown").to_string();
        assert!(
            e.contains("unknown dataset `ml100k` (did you mean `ml-100k`?)"),
            "{e}"
        );
        let e = c.get("movielens-100k").expect_err("unknown").to_string();
        assert!(e.contains("known datasets: fsdd,"), "{e}");
        let e = c.get("100k").expect_err("unknown").to_string();
        assert!(e.contains("did you mean `ml-100k`"), "{e}");
    }

    #[test]
    fn a_malformed_manifest_line_is_named() {
        let ok = parse_manifest(&format!("{}  a/b.wav\n", "ab".repeat(32)), "m").expect("ok");
        assert_eq!(ok[0].path, "a/b.wav");
        let binary = parse_manifest(&format!("{} *c.pgm\n", "AB".repeat(32)), "m").expect("ok");
        assert_eq!(binary[0].sha256, "ab".repeat(32));
        for (text, needle) in [
            ("xyz  a.wav", "not a sha256"),
            ("nospace", "expected"),
            (&format!("{}  ../etc/passwd", "0".repeat(64)), "relative"),
            (&format!("{}  /etc/passwd", "0".repeat(64)), "relative"),
        ] {
            let e = parse_manifest(text, "m.sha256")
                .expect_err(text)
                .to_string();
            assert!(e.contains("m.sha256: line 1") && e.contains(needle), "{e}");
        }
    }
}
