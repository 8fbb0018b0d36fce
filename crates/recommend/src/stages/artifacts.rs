//! The artifacts recommendation stages exchange: `ratings` (interactions with dense ids),
//! `rating_split` (train/test folds as rows) and `recommender` (a fitted model per fold).

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::fsutil::copy_dir;
use profundo_pipeline::StageError;
use profundo_pipeline::registry::{Artifact, Publication};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dataset::Interactions;
use crate::search::SearchRecord;
use crate::split::{FoldStats, RatingFold};
use crate::train::{Fitted, ModelKind};

/// Writes `value` to `dir/file` as postcard, atomically.
pub(super) fn save_postcard<T: Serialize>(
    dir: &Path,
    file: &str,
    value: &T,
) -> Result<(), StageError> {
    let bytes = postcard::to_allocvec(value).map_err(|e| StageError::Other(e.to_string()))?;
    profundo_core::fsutil::write_atomic(&dir.join(file), &bytes)?;
    Ok(())
}

/// Reads `dir/file` as postcard; a missing or corrupt file is an error naming it.
pub(super) fn load_postcard<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<T, StageError> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| StageError::io(&path, e))?;
    postcard::from_bytes(&bytes)
        .map_err(|e| StageError::data(&path, format!("corrupt cached artifact: {e}")))
}

/// Output of `recommend.load_ratings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratings {
    /// The interactions.
    pub data: Interactions,
}

impl Ratings {
    /// Artifact type name.
    pub const TYPE: &'static str = "ratings";
    const FILE: &'static str = "ratings.postcard";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let mut r: Ratings = load_postcard(dir, Self::FILE)?;
        r.data.reindex();
        Ok(Arc::new(r))
    }
}

impl Artifact for Ratings {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        save_postcard(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let d = &self.data;
        format!(
            "{} interactions, {} users, {} items{}",
            d.len(),
            d.users.len(),
            d.items.len(),
            if d.explicit {
                format!(", ratings {}-{}", d.scale.0, d.scale.1)
            } else {
                ", implicit".into()
            }
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Output of `recommend.split`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSplit {
    /// How the folds were made.
    pub protocol: String,
    /// The folds.
    pub folds: Vec<RatingFold>,
    /// Their statistics.
    pub stats: Vec<FoldStats>,
}

impl RatingSplit {
    /// Artifact type name.
    pub const TYPE: &'static str = "rating_split";
    const FILE: &'static str = "split.postcard";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        Ok(Arc::new(load_postcard::<RatingSplit>(dir, Self::FILE)?))
    }
}

impl Artifact for RatingSplit {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        save_postcard(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let f: Vec<String> = self
            .stats
            .iter()
            .map(|s| format!("{} ({}/{})", s.fold, s.train, s.test))
            .collect();
        format!("{}: {}", self.protocol, f.join(", "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One fold's fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRecommender {
    /// Fold name.
    pub fold: String,
    /// The fit.
    pub fitted: Fitted,
    /// Model directory (manifest + model file), relative to the artifact directory.
    pub model_dir: String,
}

/// Output of `recommend.train`: one fitted model per fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommenders {
    /// The model kind.
    pub kind: ModelKind,
    /// A human name, e.g. `mf (64 factors)`.
    pub method: String,
    /// The split protocol.
    pub protocol: String,
    /// One per fold.
    pub folds: Vec<FoldRecommender>,
    /// The hyper-parameter search that chose each fold's training settings, if one ran.
    pub search: Option<SearchRecord>,
    /// The artifact directory (not serialised).
    #[serde(skip)]
    pub root: PathBuf,
}

impl Recommenders {
    /// Artifact type name.
    pub const TYPE: &'static str = "recommender";
    const FILE: &'static str = "recommenders.postcard";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let mut r: Recommenders = load_postcard(dir, Self::FILE)?;
        r.root = dir.to_path_buf();
        Ok(Arc::new(r))
    }

    /// The fit of fold `name`.
    pub fn fold(&self, name: &str) -> Option<&FoldRecommender> {
        self.folds.iter().find(|f| f.fold == name)
    }
}

impl Artifact for Recommenders {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        for f in &self.folds {
            copy_dir(&self.root.join(&f.model_dir), &dir.join(&f.model_dir))?;
        }
        save_postcard(dir, Self::FILE, self)
    }
    fn summary(&self) -> String {
        let f: Vec<String> = self
            .folds
            .iter()
            .map(|f| format!("{} ({:.1}s)", f.fold, f.fitted.seconds))
            .collect();
        format!("{}: {}", self.method, f.join(", "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn exportable_models(&self) -> Vec<(String, PathBuf)> {
        self.folds
            .iter()
            .map(|f| (f.fold.clone(), self.root.join(&f.model_dir)))
            .collect()
    }
    fn publish(
        &self,
        stage: &str,
        _cache_dir: &Path,
        run: &mut Publication,
    ) -> Result<(), StageError> {
        let mut md = format!(
            "{}\n\n| fold | fitted on | validation | best epoch | epochs run | stopped | seconds |\n|---|---|---|---|---|---|---|\n",
            self.method
        );
        for f in &self.folds {
            let x = &f.fitted;
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1} |\n",
                f.fold,
                x.fit_rows,
                x.valid_rows,
                x.best_epoch,
                x.history.len(),
                x.stop,
                x.seconds
            ));
        }
        run.report.push((format!("Training (`{stage}`)"), md));
        if let Some(search) = &self.search {
            publish_search(search, stage, run)?;
        }
        Ok(())
    }
}

/// The search's table in `report.md`, its plot in `plots/<stage>-search.png` and the record
/// in `metrics.json` under the stage's name.
fn publish_search(
    search: &SearchRecord,
    stage: &str,
    run: &mut Publication,
) -> Result<(), StageError> {
    let plots = run.run_dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| StageError::io(&plots, e))?;
    let name = format!("{stage}-search.png");
    let series: Vec<profundo_core::plots::SearchSeries> = search
        .folds
        .iter()
        .map(|f| (f.fold.clone(), f.scores.clone(), f.best))
        .collect();
    profundo_core::plots::search_scores(
        &plots.join(&name),
        &format!("{stage}: hyper-parameter search"),
        search.metric.name(),
        &series,
    )?;
    let md = format!(
        "{}
![search](plots/{name})
",
        search.markdown()
    );
    run.report
        .push((format!("Hyper-parameter search (`{stage}`)"), md));
    let value = serde_json::to_value(SearchMetrics { search })
        .map_err(|e| StageError::Other(e.to_string()))?;
    run.metrics.insert(stage.to_string(), value);
    Ok(())
}

/// What a training stage adds to `metrics.json`.
#[derive(Serialize)]
struct SearchMetrics<'a> {
    search: &'a SearchRecord,
}
