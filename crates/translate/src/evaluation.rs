//! Test-set scoring: each direction translated greedily and with the beam through the same
//! [`Translator`] the apps use, scored with sacreBLEU-compatible BLEU and chrF2.

use std::time::Instant;

use serde::Serialize;

use crate::batching::Direction;
use crate::corpus::ParallelCorpus;
use crate::decode::DecodeConfig;
use crate::error::{Result, TranslateError};
use crate::sacrebleu::{BleuScore, corpus_bleu, corpus_chrf};
use crate::translator::Translator;

/// Scores of one decoding method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodScores {
    /// `greedy` or `beam N`.
    pub method: String,
    /// Corpus BLEU (sacreBLEU default signature).
    pub bleu: BleuScore,
    /// Corpus chrF2.
    pub chrf: f64,
    /// Sentences per second while translating the test set.
    pub sentences_per_s: f64,
}

/// One example translation.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Source sentence.
    pub source: String,
    /// Reference translation.
    pub reference: String,
    /// Greedy output.
    pub greedy: String,
    /// Beam output.
    pub beam: String,
}

/// The results of one direction.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionResult {
    /// The direction.
    pub direction: Direction,
    /// Greedy scores.
    pub greedy: MethodScores,
    /// Beam scores.
    pub beam: MethodScores,
    /// Examples.
    pub samples: Vec<Sample>,
}

impl DirectionResult {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{}: BLEU {:.2} greedy / {:.2} {}; chrF2 {:.2} / {:.2}",
            self.direction,
            self.greedy.bleu.score,
            self.beam.bleu.score,
            self.beam.method,
            self.greedy.chrf,
            self.beam.chrf
        )
    }

    /// The manifest's headline scores of this direction.
    pub fn summary_scores(&self) -> crate::translator::DirectionSummary {
        crate::translator::DirectionSummary {
            direction: self.direction.clone(),
            bleu_greedy: self.greedy.bleu.score,
            bleu_beam: self.beam.bleu.score,
            chrf_greedy: self.greedy.chrf,
            chrf_beam: self.beam.chrf,
        }
    }

    /// The metrics entry of this direction.
    pub fn metrics(&self) -> serde_json::Value {
        let m = |s: &MethodScores| {
            serde_json::json!({
                "method": s.method,
                "bleu": s.bleu.score,
                "chrf": s.chrf,
                "bleu_detail": s.bleu,
                "sentences_per_s": s.sentences_per_s,
            })
        };
        serde_json::json!({ "greedy": m(&self.greedy), "beam": m(&self.beam) })
    }
}

fn score(
    t: &Translator,
    dir: &Direction,
    sources: &[&str],
    refs: &[&str],
    cfg: &DecodeConfig,
) -> Result<(MethodScores, Vec<String>)> {
    let start = Instant::now();
    let out = t.translate(sources, dir, cfg)?;
    let secs = start.elapsed().as_secs_f64();
    let hyps: Vec<String> = out.into_iter().map(|o| o.translation).collect();
    let bleu = corpus_bleu(&hyps, refs).map_err(|e| TranslateError::Training(e.to_string()))?;
    let chrf = corpus_chrf(&hyps, refs)
        .map_err(|e| TranslateError::Training(e.to_string()))?
        .score;
    let method = if cfg.beam <= 1 {
        "greedy".to_string()
    } else {
        format!("beam {}", cfg.beam)
    };
    Ok((
        MethodScores {
            method,
            bleu,
            chrf,
            sentences_per_s: sources.len() as f64 / secs.max(1e-9),
        },
        hyps,
    ))
}

/// Translates the `test` pairs in every direction the model knows.
pub fn evaluate(
    t: &Translator,
    corpus: &ParallelCorpus,
    test: &[u32],
    cfg: &DecodeConfig,
    examples: usize,
) -> Result<Vec<DirectionResult>> {
    let mut out = Vec::new();
    for dir in t.directions().to_vec() {
        let (s, r) = dir.sides(corpus)?;
        let sources: Vec<&str> = test
            .iter()
            .map(|&i| corpus.pairs[i as usize][s].as_str())
            .collect();
        let refs: Vec<&str> = test
            .iter()
            .map(|&i| corpus.pairs[i as usize][r].as_str())
            .collect();
        let (greedy, g) = score(t, &dir, &sources, &refs, &cfg.with_beam(1))?;
        let (beam, b) = score(t, &dir, &sources, &refs, &cfg.with_beam(cfg.beam.max(2)))?;
        let samples = (0..examples.min(sources.len()))
            .map(|i| Sample {
                source: sources[i].to_string(),
                reference: refs[i].to_string(),
                greedy: g[i].clone(),
                beam: b[i].clone(),
            })
            .collect();
        out.push(DirectionResult {
            direction: dir,
            greedy,
            beam,
            samples,
        });
    }
    Ok(out)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The Markdown report.
pub fn report(results: &[DirectionResult], sentences: usize) -> String {
    let mut md = format!(
        "{sentences} held-out test sentences per direction (no sentence shared with training).\n\n\
         | direction | method | BLEU | chrF2 | sentences/s |\n|---|---|---|---|---|\n"
    );
    for r in results {
        for m in [&r.greedy, &r.beam] {
            md.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.1} |\n",
                r.direction, m.method, m.bleu.score, m.chrf, m.sentences_per_s
            ));
        }
    }
    md.push_str(&format!(
        "\nBLEU signature: `{}`; chrF signature: `{}`.\n",
        crate::sacrebleu::bleu_signature(),
        crate::sacrebleu::chrf_signature()
    ));
    for r in results {
        md.push_str(&format!(
            "\n### Examples {}\n\n| source | reference | greedy | {} |\n|---|---|---|---|\n",
            r.direction, r.beam.method
        ));
        for s in &r.samples {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&s.source),
                cell(&s.reference),
                cell(&s.greedy),
                cell(&s.beam)
            ));
        }
    }
    md
}
