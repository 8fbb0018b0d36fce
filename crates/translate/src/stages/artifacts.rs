//! The translation artifacts: `parallel_corpus`, `corpus_split` and `translation_model`.

use super::*;

pub(super) fn save_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<(), StageError> {
    profundo_core::fsutil::write_json_atomic(&dir.join(file), value)?;
    Ok(())
}

pub(super) fn load_json<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<T, StageError> {
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
