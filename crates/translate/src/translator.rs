//! A saved translation model (`manifest.json`, `model.safetensors`, `tokenizer.json`) and
//! the [`Translator`] that apps use: normalises each line, splits a line longer than the
//! model's maximum into pieces at sentence ends (or words), and decodes greedily or with a
//! beam.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use profundo_core::manifest::{
    Domain, ModelManifest, ModelSection, WEIGHTS_FILE, load_weights, resolve_model_dir,
    save_weights,
};
use serde::{Deserialize, Serialize};

use crate::batching::{Direction, tagged};
use crate::corpus::normalize;
use crate::decode::{DecodeConfig, decode};
use crate::error::{Result, TranslateError};
use crate::model::{ModelConfig, Seq2Seq};
use crate::tokenizer::{Subword, TOKENIZER_FILE};
use crate::train::specials;

/// The translation section of a model manifest (`model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslatorSpec {
    /// The network shape.
    pub network: ModelConfig,
    /// Vocabulary size (the tokenizer must match it).
    pub vocab_size: usize,
    /// The two languages.
    pub languages: [String; 2],
    /// Directions trained.
    pub directions: Vec<Direction>,
    /// The tokenizer (`tokenizer.json`) and how text is normalised before it.
    pub tokenizer: String,
    /// How the model was trained.
    pub training: TranslatorTraining,
}

/// How a translator was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslatorTraining {
    /// The training settings.
    pub config: crate::train::TrainConfig,
    /// Optimizer steps run.
    pub steps: usize,
    /// Wall-clock minutes.
    pub minutes: f64,
    /// Why training ended.
    pub stop: Option<String>,
    /// Mean dev BLEU of the kept step.
    pub dev_bleu: Option<f64>,
    /// Training examples (sentence pairs, once per direction).
    pub train_examples: usize,
    /// The seed.
    pub seed: u64,
    /// Backend it was trained on.
    pub backend: String,
}

/// The headline of a translation evaluation, as a model manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslationSummary {
    /// Test sentences per direction.
    pub test_sentences: usize,
    /// Per direction, greedy and beam scores.
    pub directions: Vec<DirectionSummary>,
    /// sacreBLEU's BLEU signature.
    pub bleu_signature: String,
}

/// One direction's test scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionSummary {
    /// The direction.
    pub direction: Direction,
    /// Corpus BLEU, greedy decoding.
    pub bleu_greedy: f64,
    /// Corpus BLEU, beam search.
    pub bleu_beam: f64,
    /// chrF2, greedy.
    pub chrf_greedy: f64,
    /// chrF2, beam.
    pub chrf_beam: f64,
}

impl ModelSection for TranslatorSpec {
    const DOMAIN: Domain = Domain::Translate;
    type Metrics = TranslationSummary;
}

/// A translation model's manifest.
pub type TranslatorManifest = ModelManifest<TranslatorSpec>;

/// Writes a model directory atomically: weights, tokenizer, then the manifest.
pub fn save(
    dir: &Path,
    model: &Seq2Seq,
    tok: &Subword,
    manifest: &TranslatorManifest,
) -> Result<()> {
    profundo_core::fsutil::write_dir_atomic(dir, |tmp| -> Result<()> {
        save_weights(&tmp.join(WEIGHTS_FILE), model)?;
        tok.save(&tmp.join(TOKENIZER_FILE))?;
        manifest.save(tmp)?;
        Ok(())
    })
}

/// One translated line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Translation {
    /// The input line.
    pub source: String,
    /// Its translation (empty for an empty line).
    pub translation: String,
    /// Pieces the line was split into (more than 1 only for lines over the model's maximum).
    pub pieces: usize,
}

/// One line of `profundo translate --json` (the server's translate route answers the same).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TranslatedLine {
    /// 1-based line number in the input.
    pub line: usize,
    /// The direction, `from-to`.
    pub direction: String,
    /// The input line.
    pub source: String,
    /// Its translation.
    pub translation: String,
    /// Pieces the line was split into (more than 1 only for lines over the model's maximum).
    pub pieces: usize,
}

impl TranslatedLine {
    /// The report of line `line` (1-based) translated in direction `dir`.
    pub fn new(line: usize, dir: &Direction, t: Translation) -> Self {
        Self {
            line,
            direction: dir.to_string(),
            source: t.source,
            translation: t.translation,
            pieces: t.pieces,
        }
    }
}

/// The longest line translated, in characters: a longer one is refused (it is a text
/// without line breaks, not a sentence; split it into sentences, one per line). Lines under
/// it but over the model's token limit are translated in pieces.
pub const MAX_LINE_CHARS: usize = 20_000;

/// Why `line` is too long to translate, if it is.
fn line_too_long(line: &str) -> Option<String> {
    let n = line.chars().count();
    (n > MAX_LINE_CHARS).then(|| {
        format!(
            "the line is {n} characters long; lines of at most {MAX_LINE_CHARS} are \
             translated (split the text into sentences, one per line)"
        )
    })
}

/// A loaded translation model.
pub struct Translator {
    model: Seq2Seq,
    tok: Subword,
    spec: TranslatorSpec,
    dir: PathBuf,
    device: Device,
    /// The manifest.
    pub manifest: TranslatorManifest,
}

impl Translator {
    /// Loads a model directory, or a run directory / pipeline run folder holding one.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let manifest = TranslatorManifest::load(&dir)?;
        let spec = manifest.model.clone();
        let tok = Subword::load(&dir.join(TOKENIZER_FILE), &spec.languages, spec.vocab_size)?;
        let model = load_weights(
            &dir.join(WEIGHTS_FILE),
            spec.network.init(spec.vocab_size, device),
        )?;
        Ok(Self {
            model,
            tok,
            spec,
            dir,
            device: device.clone(),
            manifest,
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directions this model was trained for.
    pub fn directions(&self) -> &[Direction] {
        &self.spec.directions
    }

    /// The direction for optional `from`/`to` languages: given ones must match a trained
    /// direction; missing ones are filled in when that is unambiguous.
    pub fn direction(&self, from: Option<&str>, to: Option<&str>) -> Result<Direction> {
        let fits =
            |d: &&Direction| from.is_none_or(|f| f == d.from) && to.is_none_or(|t| t == d.to);
        let matching: Vec<&Direction> = self.spec.directions.iter().filter(fits).collect();
        let trained: Vec<String> = self.spec.directions.iter().map(|d| d.to_string()).collect();
        match matching.as_slice() {
            [d] => Ok((*d).clone()),
            [] => Err(TranslateError::config(
                "--from/--to",
                format!(
                    "{} -> {}: this model translates {}",
                    from.unwrap_or("any"),
                    to.unwrap_or("any"),
                    trained.join(", ")
                ),
            )),
            _ => Err(TranslateError::config(
                "--from/--to",
                format!(
                    "say which direction: this model translates {}",
                    trained.join(", ")
                ),
            )),
        }
    }

    /// Longest input in tokens the model takes in one piece.
    pub fn max_source_tokens(&self) -> usize {
        self.model.max_len() - 2
    }

    /// Translates `lines` in direction `dir`; empty lines stay empty.
    pub fn translate(
        &self,
        lines: &[&str],
        dir: &Direction,
        cfg: &DecodeConfig,
    ) -> Result<Vec<Translation>> {
        let tag = self.tok.tag(&dir.to).ok_or_else(|| {
            TranslateError::config("--to", format!("the model has no `{}` target", dir.to))
        })?;
        let limit = self.max_source_tokens();
        let mut sources: Vec<Vec<u32>> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        let mut out: Vec<Translation> = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if let Some(message) = line_too_long(line) {
                return Err(TranslateError::Input {
                    source_name: "input".into(),
                    line: Some(i + 1),
                    message,
                });
            }
            let text = normalize(line);
            let pieces = if text.is_empty() {
                Vec::new()
            } else {
                self.pieces(&text, limit)?
            };
            out.push(Translation {
                source: line.to_string(),
                translation: String::new(),
                pieces: pieces.len(),
            });
            for p in pieces {
                sources.push(tagged(tag, p, self.tok.eos, self.model.max_len()));
                owners.push(i);
            }
        }
        let hyps = decode(
            &self.model,
            &sources,
            cfg,
            specials(&self.tok),
            &self.device,
        );
        for (h, &i) in hyps.iter().zip(&owners) {
            let text = self.tok.decode(h)?;
            let t = &mut out[i].translation;
            if !t.is_empty() && !text.is_empty() {
                t.push(' ');
            }
            t.push_str(&text);
        }
        Ok(out)
    }

    /// Token pieces of `text`, each at most `limit` tokens: whole sentences where they
    /// fit, else runs of words, else (a single huge word) cut by tokens.
    fn pieces(&self, text: &str, limit: usize) -> Result<Vec<Vec<u32>>> {
        let ids = self.tok.encode(text)?;
        if ids.len() <= limit {
            return Ok(vec![ids]);
        }
        let mut units: Vec<String> = Vec::new();
        for sentence in split_sentences(text) {
            if self.tok.encode(&sentence)?.len() <= limit {
                units.push(sentence);
            } else {
                units.extend(sentence.split(' ').map(str::to_string));
            }
        }
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        let mut current = String::new();
        for u in units {
            let joined = if current.is_empty() {
                u.clone()
            } else {
                format!("{current} {u}")
            };
            if self.tok.encode(&joined)?.len() <= limit {
                current = joined;
                continue;
            }
            if !current.is_empty() {
                pieces.push(self.tok.encode(&current)?);
            }
            let ids = self.tok.encode(&u)?;
            if ids.len() <= limit {
                current = u;
            } else {
                pieces.extend(ids.chunks(limit).map(<[u32]>::to_vec));
                current = String::new();
            }
        }
        if !current.is_empty() {
            pieces.push(self.tok.encode(&current)?);
        }
        Ok(pieces)
    }
}

/// Splits after `.`, `!`, `?`, `;` or `…` followed by a space.
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        if matches!(c, '.' | '!' | '?' | ';' | '…') && chars.peek() == Some(&' ') {
            chars.next();
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_final_punctuation() {
        assert_eq!(
            split_sentences("Hola. ¿Qué tal? Bien; gracias"),
            vec!["Hola.", "¿Qué tal?", "Bien;", "gracias"]
        );
        assert_eq!(split_sentences("3.5 km"), vec!["3.5 km"]);
    }
}
