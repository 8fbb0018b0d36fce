//! Translation stage kinds: `translate.load_corpus`, `translate.split`, `translate.train`
//! and `translate.evaluate`, and the artifacts they exchange.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::backend;
use profundo_core::fsutil::copy_dir;
use profundo_core::manifest::Manifest;
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
use crate::translator::{MANIFEST_KIND, Translator, TranslatorSpec, save};

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

fn save_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<(), StageError> {
    profundo_core::fsutil::write_json_atomic(&dir.join(file), value)?;
    Ok(())
}

fn load_json<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<T, StageError> {
    Ok(profundo_core::fsutil::read_json(&dir.join(file))?)
}

/// Output of `translate.load_corpus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Corpus {
    /// The pairs.
    pub corpus: ParallelCorpus,
}

impl Corpus {
    /// Artifact type name.
    pub const TYPE: &'static str = "parallel_corpus";
    const FILE: &'static str = "corpus.json";
    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        Ok(Arc::new(load_json::<Corpus>(dir, Self::FILE)?))
    }
}

impl Artifact for Corpus {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        save_json(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let c = &self.corpus;
        format!(
            "{} {}-{} pairs",
            c.pairs.len(),
            c.languages[0],
            c.languages[1]
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Output of `translate.split`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Split {
    /// The parts.
    pub split: CorpusSplit,
    /// Pairs in the corpus it was cut from (a consistency check).
    pub corpus_pairs: usize,
}

impl Split {
    /// Artifact type name.
    pub const TYPE: &'static str = "corpus_split";
    const FILE: &'static str = "split.json";
    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        Ok(Arc::new(load_json::<Split>(dir, Self::FILE)?))
    }
}

impl Artifact for Split {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        save_json(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let s = &self.split;
        format!(
            "{} train / {} dev / {} test pairs ({} overlapping removed)",
            s.train.len(),
            s.dev.len(),
            s.test.len(),
            s.overlap_removed
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Output of `translate.train`: a servable model directory and its training history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslationModel {
    /// Directions trained.
    pub directions: Vec<Direction>,
    /// Training history.
    pub progress: Progress,
    /// Model directory, relative to the artifact directory.
    pub model_dir: String,
    /// The artifact directory (not serialised).
    #[serde(skip)]
    pub root: PathBuf,
}

impl TranslationModel {
    /// Artifact type name.
    pub const TYPE: &'static str = "translation_model";
    const FILE: &'static str = "training.json";
    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let mut m: TranslationModel = load_json(dir, Self::FILE)?;
        m.root = dir.to_path_buf();
        Ok(Arc::new(m))
    }
    /// The model directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.model_dir)
    }
}

impl Artifact for TranslationModel {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        copy_dir(&self.dir(), &dir.join(&self.model_dir))?;
        save_json(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let p = &self.progress;
        let best = p.best.map(|b| p.curve[b].mean_bleu).unwrap_or(0.0);
        format!(
            "{} steps, {:.1} min, best dev BLEU {best:.2} ({})",
            p.step,
            p.elapsed_s / 60.0,
            p.stop.as_deref().unwrap_or("?")
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn exportable_models(&self) -> Vec<(String, PathBuf)> {
        vec![("translator".into(), self.dir())]
    }
    fn publish(&self, stage: &str, _cache: &Path, run: &mut Publication) -> Result<(), StageError> {
        let dirs: Vec<String> = self.directions.iter().map(|d| d.to_string()).collect();
        let mut md = format!(
            "Dev BLEU (greedy, sacreBLEU) against training time; the best point is the model kept.\n\n| step | epochs | minutes | train loss | {} | mean |\n|---|---|---|---|{}---|\n",
            dirs.join(" | "),
            "---|".repeat(dirs.len())
        );
        for (i, p) in self.progress.curve.iter().enumerate() {
            let per: Vec<String> = p.dev_bleu.iter().map(|b| format!("{b:.2}")).collect();
            md.push_str(&format!(
                "| {}{} | {:.2} | {:.1} | {:.3} | {} | {:.2} |\n",
                p.step,
                if Some(i) == self.progress.best {
                    " (best)"
                } else {
                    ""
                },
                p.epoch,
                p.minutes,
                p.train_loss,
                per.join(" | "),
                p.mean_bleu
            ));
        }
        run.report.push((format!("Training (`{stage}`)"), md));
        Ok(())
    }
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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        if p.directions.is_empty() {
            return Err((
                "directions".into(),
                "name at least one, e.g. [\"es-en\"]".into(),
            ));
        }
        if p.vocab_size < 300 {
            return Err((
                "vocab_size".into(),
                format!(
                    "must be at least 300 (256 bytes + specials), got {}",
                    p.vocab_size
                ),
            ));
        }
        p.model
            .check()
            .map_err(|(f, m)| (format!("model.{f}"), m))?;
        p.training
            .check()
            .map_err(|(f, m)| (format!("training.{f}"), m))
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
        };
        let manifest = Manifest {
            format: 1,
            kind: MANIFEST_KIND.into(),
            task: p.task.clone(),
            profundo_version: profundo_core::VERSION.into(),
            created: now(),
            model: serde_json::to_value(&spec).map_err(|e| StageError::Other(e.to_string()))?,
            input_shape: [0, 0, 0],
            labels: Vec::new(),
            features: serde_json::json!({
                "tokenizer": "byte-level BPE (tokenizers)",
                "vocab_size": tok.vocab_size(),
                "normalization": "NFC, single spaces",
            }),
            training: serde_json::to_value(&p.training)
                .map_err(|e| StageError::Other(e.to_string()))?,
            metrics: serde_json::json!({
                "dev_bleu": pr.best.map(|b| pr.curve[b].mean_bleu),
                "steps": pr.step,
                "minutes": pr.elapsed_s / 60.0,
            }),
            dataset_fingerprint: corpus.fingerprint(),
            decision: serde_json::Value::Null,
        };
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

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parameters of `translate.evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {
    /// Decoding settings (`beam` is the beam size of the beam rows; greedy is always run).
    pub decode: DecodeConfig,
    /// Test pairs to use (0 = all).
    pub test_sentences: usize,
    /// Example translations in the report.
    pub examples: usize,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            decode: DecodeConfig {
                beam: 5,
                ..DecodeConfig::default()
            },
            test_sentences: 0,
            examples: 10,
        }
    }
}

/// Scores a translation model on the test set.
pub struct EvaluateTranslator;

impl TypedStage for EvaluateTranslator {
    type Params = EvaluateParams;
    const KIND: &'static str = "translate.evaluate";
    const DOC: &'static str = "sacreBLEU-compatible BLEU and chrF2 per direction on the test set, greedy and beam, with example translations";
    const INPUTS: &'static [Slot] = &[
        CORPUS,
        SPLIT,
        Slot {
            name: "model",
            accepts: &[TranslationModel::TYPE],
            optional: false,
        },
    ];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        p.decode
            .check()
            .map_err(|(f, m)| (format!("decode.{f}"), m))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (corpus, parts) = corpus_and_split(inputs)?;
        let m: &TranslationModel = input(inputs, 2)?;
        let device = backend::device(ctx.backend, &ctx.device)?;
        let translator = Translator::load(&m.dir(), &device)?;
        let test: Vec<u32> = if p.test_sentences > 0 {
            parts.test.iter().take(p.test_sentences).copied().collect()
        } else {
            parts.test.clone()
        };
        let results = evaluate(&translator, corpus, &test, &p.decode, p.examples)?;
        for r in &results {
            ctx.log(&r.summary());
        }
        let mut metrics = serde_json::Map::new();
        for r in &results {
            metrics.insert(r.direction.to_string(), r.metrics());
        }
        metrics.insert("test_sentences".into(), test.len().into());
        metrics.insert(
            "bleu_signature".into(),
            crate::sacrebleu::bleu_signature().into(),
        );
        metrics.insert(
            "chrf_signature".into(),
            crate::sacrebleu::chrf_signature().into(),
        );
        let pr = &m.progress;
        metrics.insert("training_minutes".into(), (pr.elapsed_s / 60.0).into());
        metrics.insert("training_steps".into(), pr.step.into());
        let report = crate::evaluation::report(&results, test.len());
        Ok(Arc::new(MetricsArtifact {
            metrics: serde_json::Value::Object(metrics),
            report,
            plots: Vec::new(),
            root: PathBuf::new(),
        }))
    }
}
