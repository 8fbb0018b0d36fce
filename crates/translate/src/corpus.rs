//! Parallel corpora: TSV (`source<TAB>target`, columns named by language) or two aligned
//! plain-text files (Moses style), normalised to NFC with single spaces, with empty pairs
//! and pairs over a length ratio dropped and counted.

use profundo_pipeline::ParamError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Result, TranslateError};

/// What to do with a TSV line that has no tab.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BadLines {
    /// Stop with an error naming the file and line (default).
    #[default]
    Error,
    /// Skip the line and count it.
    Skip,
}

/// Where the pairs are and how to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorpusSpec {
    /// One TSV file (`a<TAB>b`; extra columns, like Tatoeba's attribution, are ignored), or
    /// two aligned plain-text files, one sentence per line, in the order of `languages`.
    pub files: Vec<PathBuf>,
    /// The language of each column (TSV) or file (Moses), e.g. `["en", "es"]`.
    pub languages: [String; 2],
    /// Drop pairs whose longer side has more than this many times the words of the shorter.
    #[serde(default = "default_max_ratio")]
    pub max_ratio: f64,
    /// Drop pairs with a side longer than this many words.
    #[serde(default = "default_max_words")]
    pub max_words: usize,
    /// TSV lines without a tab: `error` (default) or `skip` (counted).
    #[serde(default)]
    pub bad_lines: BadLines,
    /// Read only the first this many lines (0 = all); for quick runs.
    #[serde(default)]
    pub limit: usize,
}

fn default_max_ratio() -> f64 {
    3.0
}

fn default_max_words() -> usize {
    80
}

/// Counts of what reading kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Lines read.
    pub lines: usize,
    /// Pairs kept.
    pub kept: usize,
    /// Pairs with an empty side.
    pub empty: usize,
    /// Pairs over the length ratio.
    pub ratio: usize,
    /// Pairs over the word limit.
    pub too_long: usize,
    /// Malformed lines skipped (`bad_lines = "skip"`).
    pub malformed: usize,
}

/// Sentence pairs in two languages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelCorpus {
    /// The two languages, in column order.
    pub languages: [String; 2],
    /// The pairs, `[first language, second language]`.
    pub pairs: Vec<[String; 2]>,
    /// What reading kept and dropped.
    pub stats: LoadStats,
}

impl ParallelCorpus {
    /// Index (0 or 1) of `lang`.
    pub fn side(&self, lang: &str) -> Option<usize> {
        self.languages.iter().position(|l| l == lang)
    }

    /// A fingerprint of the pairs (blake3 of the text), for manifests.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        for [a, b] in &self.pairs {
            h.update(a.as_bytes());
            h.update(b"\t");
            h.update(b.as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_hex()[..16].to_string()
    }
}

/// Unicode NFC, every whitespace run to one space, trimmed.
pub fn normalize(text: &str) -> String {
    let nfc: String = text.nfc().collect();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks the settings.
pub fn check(spec: &CorpusSpec) -> std::result::Result<(), ParamError> {
    if !(1..=2).contains(&spec.files.len()) {
        return Err(ParamError::rule(
            "files",
            format!(
                "give one TSV file or two aligned text files, got {}",
                spec.files.len()
            ),
        ));
    }
    let [a, b] = &spec.languages;
    if a.is_empty() || b.is_empty() || a == b {
        return Err(ParamError::rule(
            "languages",
            format!("need two different language codes, got [{a:?}, {b:?}]"),
        ));
    }
    if spec.max_ratio.is_nan() || spec.max_ratio < 1.0 {
        return Err(ParamError::new(
            "max_ratio",
            spec.max_ratio,
            "must be at least 1",
        ));
    }
    if spec.max_words == 0 {
        return Err(ParamError::rule("max_words", "must be positive"));
    }
    Ok(())
}

/// Reads the lines of `path` as UTF-8 (an invalid line is an error naming it).
fn read_lines(path: &Path, limit: usize) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| TranslateError::io(path, e))?;
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        if limit > 0 && out.len() >= limit {
            break;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| TranslateError::Corpus {
            path: path.to_path_buf(),
            line: Some(i + 1),
            message: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        out.push(line.to_string());
    }
    if bytes.ends_with(b"\n") && out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    Ok(out)
}

/// Reads a corpus as `spec` says, relative paths against `base`.
pub fn load(spec: &CorpusSpec, base: &Path) -> Result<ParallelCorpus> {
    check(spec)
        .map_err(|e| TranslateError::config(e.param.as_deref().unwrap_or("corpus"), e.detail()))?;
    let files: Vec<PathBuf> = spec.files.iter().map(|f| base.join(f)).collect();
    let mut stats = LoadStats::default();
    let mut raw_pairs: Vec<(usize, String, String)> = Vec::new();
    if let [tsv] = files.as_slice() {
        for (i, line) in read_lines(tsv, spec.limit)?.into_iter().enumerate() {
            stats.lines += 1;
            let mut cols = line.split('\t');
            match (cols.next(), cols.next()) {
                (Some(a), Some(b)) => raw_pairs.push((i + 1, a.to_string(), b.to_string())),
                _ if line.trim().is_empty() => stats.empty += 1,
                _ => match spec.bad_lines {
                    BadLines::Skip => stats.malformed += 1,
                    BadLines::Error => {
                        return Err(TranslateError::Corpus {
                            path: tsv.clone(),
                            line: Some(i + 1),
                            message: "no tab: expected `source<TAB>target` (set \
                                      `bad_lines = \"skip\"` to skip such lines)"
                                .into(),
                        });
                    }
                },
            }
        }
    } else {
        let a = read_lines(&files[0], spec.limit)?;
        let b = read_lines(&files[1], spec.limit)?;
        if a.len() != b.len() {
            return Err(TranslateError::Corpus {
                path: files[1].clone(),
                line: None,
                message: format!(
                    "{} lines, but {} has {}: aligned files must have one line per sentence",
                    b.len(),
                    files[0].display(),
                    a.len()
                ),
            });
        }
        stats.lines = a.len();
        raw_pairs = a
            .into_iter()
            .zip(b)
            .enumerate()
            .map(|(i, (x, y))| (i + 1, x, y))
            .collect();
    }
    let mut pairs = Vec::with_capacity(raw_pairs.len());
    for (_, a, b) in raw_pairs {
        let (a, b) = (normalize(&a), normalize(&b));
        if a.is_empty() || b.is_empty() {
            stats.empty += 1;
            continue;
        }
        let (wa, wb) = (a.split(' ').count(), b.split(' ').count());
        if wa.max(wb) > spec.max_words {
            stats.too_long += 1;
            continue;
        }
        if wa.max(wb) as f64 > spec.max_ratio * wa.min(wb) as f64 {
            stats.ratio += 1;
            continue;
        }
        pairs.push([a, b]);
    }
    stats.kept = pairs.len();
    if pairs.is_empty() {
        return Err(TranslateError::Corpus {
            path: files[0].clone(),
            line: None,
            message: "no usable sentence pairs".into(),
        });
    }
    Ok(ParallelCorpus {
        languages: spec.languages.clone(),
        pairs,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(files: Vec<PathBuf>) -> CorpusSpec {
        CorpusSpec {
            files,
            languages: ["en".into(), "es".into()],
            max_ratio: 3.0,
            max_words: 80,
            bad_lines: BadLines::Error,
            limit: 0,
        }
    }

    #[test]
    fn normalizes_to_nfc_and_single_spaces() {
        // "é" as e + combining acute, a tab and a non-breaking space inside.
        assert_eq!(normalize("  cafe\u{301}\t au\u{a0}lait "), "café au lait");
    }

    #[test]
    fn tsv_drops_empty_and_unbalanced_pairs_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.tsv");
        std::fs::write(
            &p,
            "Hi.\tHola.\tCC-BY x\n\tVacío.\nYes.\tSí, claro que sí, por supuesto que sí.\nGo.\tVe.\n",
        )
        .unwrap();
        let c = load(&spec(vec![p]), Path::new("/")).unwrap();
        assert_eq!(
            c.pairs,
            vec![
                ["Hi.".to_string(), "Hola.".to_string()],
                ["Go.".into(), "Ve.".into()]
            ]
        );
        assert_eq!(
            (c.stats.lines, c.stats.empty, c.stats.ratio, c.stats.kept),
            (4, 1, 1, 2)
        );
    }

    #[test]
    fn a_line_without_tab_is_an_error_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.tsv");
        std::fs::write(&p, "Hi.\tHola.\nbroken line\n").unwrap();
        let err = load(&spec(vec![p.clone()]), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.tsv, line 2") && err.contains("no tab"),
            "{err}"
        );
        let mut s = spec(vec![p]);
        s.bad_lines = BadLines::Skip;
        let c = load(&s, Path::new("/")).unwrap();
        assert_eq!((c.stats.malformed, c.stats.kept), (1, 1));
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.tsv");
        std::fs::write(&p, b"Hi.\tHola.\nbad \xff\tmal\n").unwrap();
        let err = load(&spec(vec![p]), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn moses_files_must_align() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("x.en"), dir.path().join("x.es"));
        std::fs::write(&a, "Hi.\nGo.\n").unwrap();
        std::fs::write(&b, "Hola.\nVe.\n").unwrap();
        let c = load(&spec(vec![a.clone(), b.clone()]), Path::new("/")).unwrap();
        assert_eq!(c.pairs.len(), 2);
        std::fs::write(&b, "Hola.\n").unwrap();
        let err = load(&spec(vec![a, b]), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aligned"), "{err}");
    }
}
