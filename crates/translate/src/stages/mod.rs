//! Translation stage kinds: `translate.load_corpus`, `translate.split`, `translate.train`
//! and `translate.evaluate`, and the artifacts they exchange.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::backend;
use profundo_core::fsutil::copy_dir;
use profundo_core::manifest::Domain;
use profundo_pipeline::ParamError;
use profundo_pipeline::artifacts::MetricsArtifact;
use profundo_pipeline::registry::{
    Artifact, Publication, Slot, StageContext, TypedStage, data_path, input,
};
use profundo_pipeline::{Registry, StageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::batching::{Direction, examples, source_ids};
use crate::corpus::{BadLines, CorpusSpec, ParallelCorpus, load};
use crate::decode::DecodeConfig;
use crate::evaluation::evaluate;
use crate::model::ModelConfig;
use crate::split::{CorpusSplit, split};
use crate::tokenizer::{Subword, TOKENIZER_FILE};
use crate::train::{DevSet, Progress, TrainConfig, train};
use crate::translator::{
    TranslationSummary, Translator, TranslatorManifest, TranslatorSpec, TranslatorTraining, save,
};

mod artifacts;
pub use artifacts::{Corpus, Split, TranslationModel};

mod evaluate;
pub use evaluate::{EvaluateParams, EvaluateTranslator};

/// Registers the translation stages and artifact types.
pub fn register(reg: &mut Registry) {
    reg.artifact(Corpus::TYPE, Corpus::load)
        .artifact(Split::TYPE, Split::load)
        .publishing_artifact(TranslationModel::TYPE, TranslationModel::load)
        .stage::<LoadCorpus>()
        .stage::<SplitCorpus>()
        .stage::<TrainTranslator>()
        .stage::<EvaluateTranslator>();
}

/// Parameters of `translate.load_corpus`.
pub type LoadCorpusParams = CorpusSpec;

/// Reads a parallel corpus.
pub struct LoadCorpus;

impl TypedStage for LoadCorpus {
    type Params = LoadCorpusParams;
    const KIND: &'static str = "translate.load_corpus";
    const DOC: &'static str = "Read a parallel corpus (TSV or two aligned text files), NFC + whitespace normalised, empty and unbalanced pairs dropped";
    const INPUTS: &'static [Slot] = &[];
    const OUTPUT: &'static str = Corpus::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        crate::corpus::check(p)
    }

    fn reads(p: &Self::Params, pipeline_dir: &Path) -> Vec<PathBuf> {
        p.files.iter().map(|f| data_path(f, pipeline_dir)).collect()
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        _inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let mut spec = p.clone();
        spec.files = p.files.iter().map(|f| ctx.resolve(f)).collect();
        let corpus = load(&spec, Path::new(""))?;
        let s = &corpus.stats;
        ctx.log(&format!(
            "{} {}-{} pairs kept of {} lines; dropped {} empty, {} over the length ratio {}, {} over {} words{}",
            s.kept,
            corpus.languages[0],
            corpus.languages[1],
            s.lines,
            s.empty,
            s.ratio,
            p.max_ratio,
            s.too_long,
            p.max_words,
            if p.bad_lines == BadLines::Skip {
                format!(", skipped {} malformed lines", s.malformed)
            } else {
                String::new()
            }
        ));
        Ok(Arc::new(Corpus { corpus }))
    }
}

/// Parameters of `translate.split`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SplitParams {
    /// Dev pairs (model selection).
    pub dev: usize,
    /// Test pairs (reported).
    pub test: usize,
}

impl Default for SplitParams {
    fn default() -> Self {
        Self {
            dev: 1000,
            test: 2000,
        }
    }
}

/// Cuts dev and test sets.
pub struct SplitCorpus;

const CORPUS: Slot = Slot {
    name: "corpus",
    accepts: &[Corpus::TYPE],
    optional: false,
};

const SPLIT: Slot = Slot {
    name: "split",
    accepts: &[Split::TYPE],
    optional: false,
};

fn corpus_and_split(
    inputs: &[Option<Arc<dyn Artifact>>],
) -> Result<(&ParallelCorpus, &CorpusSplit), StageError> {
    let c: &Corpus = input(inputs, 0)?;
    let s: &Split = input(inputs, 1)?;
    if s.corpus_pairs != c.corpus.pairs.len() {
        return Err(StageError::Other(format!(
            "the split was cut from {} pairs but the corpus has {}",
            s.corpus_pairs,
            c.corpus.pairs.len()
        )));
    }
    Ok((&c.corpus, &s.split))
}

impl TypedStage for SplitCorpus {
    type Params = SplitParams;
    const KIND: &'static str = "translate.split";
    const DOC: &'static str =
        "Cut seeded dev and test sets; training pairs sharing a sentence with them are removed";
    const INPUTS: &'static [Slot] = &[CORPUS];
    const OUTPUT: &'static str = Split::TYPE;

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let c: &Corpus = input(inputs, 0)?;
        let s = split(&c.corpus, p.dev, p.test, ctx.seed)?;
        let art = Split {
            split: s,
            corpus_pairs: c.corpus.pairs.len(),
        };
        ctx.log(&art.summary());
        Ok(Arc::new(art))
    }
}

/// Parameters of `translate.train`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// Directions, e.g. `["es-en", "en-es"]`; one model serves all (target-language tag).
    pub directions: Vec<Direction>,
    /// Shared subword vocabulary size (BPE, byte-level).
    pub vocab_size: usize,
    /// BPE merges need at least this many occurrences.
    pub min_frequency: u64,
    /// The network.
    pub model: ModelConfig,
    /// The optimisation.
    pub training: TrainConfig,
    /// Task name for the manifest.
    pub task: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            directions: vec![Direction {
                from: "es".into(),
                to: "en".into(),
            }],
            vocab_size: 8000,
            min_frequency: 2,
            model: ModelConfig::default(),
            training: TrainConfig::default(),
            task: "translate.text".into(),
        }
    }
}

/// Trains a tokenizer and a Transformer.
pub struct TrainTranslator;

impl TypedStage for TrainTranslator {
    type Params = TrainParams;
    const KIND: &'static str = "translate.train";
    const DOC: &'static str = "Train a shared byte-level BPE vocabulary and a Transformer encoder-decoder (one model for all directions), best checkpoint by dev BLEU";
    const INPUTS: &'static [Slot] = &[CORPUS, SPLIT];
    const OUTPUT: &'static str = TranslationModel::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if p.directions.is_empty() {
            return Err(ParamError::rule(
                "directions",
                "name at least one, e.g. [\"es-en\"]",
            ));
        }
        if p.vocab_size < 300 {
            return Err(ParamError::new(
                "vocab_size",
                p.vocab_size,
                "must be at least 300 (256 bytes + specials)",
            ));
        }
        p.model.check().map_err(|e| e.within("model"))?;
        p.training.check().map_err(|e| e.within("training"))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (corpus, parts) = corpus_and_split(inputs)?;
        for d in &p.directions {
            d.sides(corpus)?;
        }
        let langs = corpus.languages.to_vec();
        let tok_path = ctx.work_dir.join(TOKENIZER_FILE);
        let tok = if tok_path.is_file() {
            ctx.log("tokenizer: reusing the one trained before the interruption");
            Subword::open(&tok_path, &langs)?
        } else {
            let texts = parts
                .train
                .iter()
                .flat_map(|&i| corpus.pairs[i as usize].iter().map(String::as_str));
            let tok = Subword::train(texts, &langs, p.vocab_size, p.min_frequency)?;
            std::fs::create_dir_all(&ctx.work_dir).map_err(|e| StageError::io(&ctx.work_dir, e))?;
            tok.save(&tok_path)?;
            tok
        };
        let train_ex = examples(corpus, &parts.train, &p.directions, &tok, p.model.max_len)?;
        let tokens: usize = train_ex.iter().map(|e| e.src.len() + e.tgt.len() + 1).sum();
        ctx.log(&format!(
            "vocabulary {} tokens; {} training examples ({} directions), {:.1} tokens each on average",
            tok.vocab_size(),
            train_ex.len(),
            p.directions.len(),
            tokens as f64 / train_ex.len().max(1) as f64
        ));
        let mut dev = Vec::new();
        for d in &p.directions {
            let (s, t) = d.sides(corpus)?;
            let ids: Vec<u32> = if p.training.dev_sentences > 0 {
                parts
                    .dev
                    .iter()
                    .take(p.training.dev_sentences)
                    .copied()
                    .collect()
            } else {
                parts.dev.clone()
            };
            let mut sources = Vec::new();
            for &i in &ids {
                sources.push(source_ids(
                    &tok,
                    &corpus.pairs[i as usize][s],
                    &d.to,
                    p.model.max_len,
                )?);
            }
            dev.push(DevSet {
                direction: d.clone(),
                sources,
                references: ids
                    .iter()
                    .map(|&i| corpus.pairs[i as usize][t].clone())
                    .collect(),
            });
        }
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let trained = train(
            &p.model,
            &p.training,
            &train_ex,
            &dev,
            &tok,
            ctx.seed,
            &device,
            &ctx.work_dir.join("checkpoints"),
        )?;
        let pr = &trained.progress;
        if trained.resumed {
            ctx.log("training resumed from the checkpoint an interrupted run left");
        }
        ctx.log(&format!(
            "{} steps in {:.1} min ({}), {:.2} steps/s; best dev BLEU {:.2}",
            pr.step,
            pr.elapsed_s / 60.0,
            pr.stop.as_deref().unwrap_or("?"),
            pr.step as f64 / pr.elapsed_s.max(1e-9),
            pr.best.map(|b| pr.curve[b].mean_bleu).unwrap_or(0.0)
        ));
        let spec = TranslatorSpec {
            network: p.model.clone(),
            vocab_size: tok.vocab_size(),
            languages: corpus.languages.clone(),
            directions: p.directions.clone(),
            tokenizer: format!(
                "byte-level BPE (tokenizers), {} pieces; NFC, single spaces",
                tok.vocab_size()
            ),
            training: TranslatorTraining {
                config: p.training.clone(),
                steps: pr.step,
                minutes: pr.elapsed_s / 60.0,
                stop: pr.stop.clone(),
                dev_bleu: pr.best.map(|b| pr.curve[b].mean_bleu),
                train_examples: train_ex.len(),
                seed: ctx.seed,
                backend: ctx.backend.to_string(),
            },
        };
        let manifest = TranslatorManifest::new(&p.task, &corpus.fingerprint(), spec);
        let rel = "model".to_string();
        save(&ctx.work_dir.join(&rel), &trained.model, &tok, &manifest)?;
        Ok(Arc::new(TranslationModel {
            directions: p.directions.clone(),
            progress: trained.progress,
            model_dir: rel,
            root: ctx.work_dir.clone(),
        }))
    }
}
