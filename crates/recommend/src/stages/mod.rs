//! Recommendation stage kinds: `recommend.load_ratings`, `recommend.split`,
//! `recommend.train` and `recommend.evaluate`, and the artifacts they exchange.

pub mod artifacts;
pub mod evaluate;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_pipeline::ParamError;
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, data_path, input};
use profundo_pipeline::{Registry, StageError};
use serde::{Deserialize, Serialize};

use crate::split::{SplitMethod, split};
use crate::table::{Columns, Format, IdKind, TableSpec};
use artifacts::{RatingSplit, Ratings, Recommenders};

/// Registers the recommendation stages and artifact types.
pub fn register(reg: &mut Registry) {
    reg.artifact(Ratings::TYPE, Ratings::load)
        .artifact(RatingSplit::TYPE, RatingSplit::load)
        .publishing_artifact(Recommenders::TYPE, Recommenders::load)
        .stage::<LoadRatings>()
        .stage::<SplitRatings>()
        .stage::<train::TrainRecommender>()
        .stage::<evaluate::EvaluateRecommender>();
}

/// The `ratings` input slot.
pub const RATINGS: Slot = Slot {
    name: "ratings",
    accepts: &[Ratings::TYPE],
    optional: false,
};

/// The `split` input slot.
pub const SPLIT: Slot = Slot {
    name: "split",
    accepts: &[RatingSplit::TYPE],
    optional: false,
};

/// The inputs of stages that work per fold: ratings and their split.
pub const RATINGS_AND_SPLIT: &[Slot] = &[RATINGS, SPLIT];

/// Parameters of `recommend.load_ratings`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRatingsParams {
    /// A rating file, or a folder holding `u.data`, `ratings.dat`, `ratings.csv` or
    /// `ratings.parquet`.
    pub path: PathBuf,
    /// The layout: `auto` (from the path), `ml100k`, `dat`, `csv` or `parquet`.
    #[serde(default)]
    pub format: Format,
    /// CSV: field separator (default `,`; tab for `.tsv`).
    pub separator: Option<char>,
    /// CSV: whether the first line names the columns (default true).
    pub header: Option<bool>,
    /// CSV/Parquet column names (defaults: MovieLens and plain names).
    #[serde(default)]
    pub columns: Columns,
    /// `numeric` (default; a non-numeric id is an error) or `text`.
    #[serde(default)]
    pub ids: IdKind,
    /// The rating scale `[min, max]`; a rating outside it is an error (default: the range
    /// found in the data).
    pub scale: Option<[f32; 2]>,
}

impl LoadRatingsParams {
    /// The reading settings.
    pub fn table(&self) -> TableSpec {
        TableSpec {
            format: self.format,
            separator: self.separator,
            header: self.header,
            columns: self.columns.clone(),
            ids: self.ids,
            scale: self.scale,
        }
    }
}

/// Reads a rating table.
pub struct LoadRatings;

impl TypedStage for LoadRatings {
    type Params = LoadRatingsParams;
    const KIND: &'static str = "recommend.load_ratings";
    const DOC: &'static str = "Read ratings (MovieLens u.data / ratings.dat / ratings.csv, any CSV or Parquet) with item titles; ids mapped to dense indices";
    const INPUTS: &'static [Slot] = &[];
    const OUTPUT: &'static str = Ratings::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if let Some([lo, hi]) = p.scale
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(ParamError::rule(
                "scale",
                format!("must be [min, max] with min < max, got [{lo}, {hi}]"),
            ));
        }
        Ok(())
    }

    fn reads(p: &Self::Params, pipeline_dir: &Path) -> Vec<PathBuf> {
        vec![data_path(&p.path, pipeline_dir)]
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        _inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let path = ctx.resolve(&p.path);
        let (data, report) = crate::dataset::load(&path, &p.table())?;
        ctx.log(&format!(
            "{}: {} interactions, {} users, {} items{}",
            report.ratings_file.display(),
            data.len(),
            data.users.len(),
            data.items.len(),
            if data.explicit {
                format!(", ratings {}-{}", data.scale.0, data.scale.1)
            } else {
                ", implicit feedback".into()
            }
        ));
        if data.duplicates_dropped > 0 {
            ctx.warn(&format!(
                "{} duplicate (user, item) rows: kept the last of each",
                data.duplicates_dropped
            ));
        }
        if let Some(m) = &report.metadata_file {
            let titled = data.titles.iter().filter(|t| !t.is_empty()).count();
            ctx.log(&format!(
                "titles for {titled} of {} items from {}{}",
                data.items.len(),
                m.display(),
                if report.metadata_items > 0 {
                    format!(
                        " ({} listed items have no interaction)",
                        report.metadata_items
                    )
                } else {
                    String::new()
                }
            ));
        }
        if !data.official_folds.is_empty() {
            let names: Vec<&str> = data
                .official_folds
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            ctx.log(&format!("official folds: {}", names.join(", ")));
        }
        Ok(Arc::new(Ratings { data }))
    }
}

/// The split methods, by name.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    /// The dataset's own folds.
    #[default]
    Official,
    /// Random by rating, seeded.
    Random,
    /// Each user's last `k` interactions by time.
    LeaveLast,
}

/// Parameters of `recommend.split` (each method uses the ones that apply to it).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SplitParams {
    /// `official` (the dataset's folds), `random` (by rating, seeded) or `leave_last`
    /// (each user's last `k` by time).
    pub method: SplitKind,
    /// official: which folds.
    pub official: Vec<String>,
    /// random: fraction held out when `folds = 1`.
    pub test_fraction: f64,
    /// random: number of folds (1 = one hold-out).
    pub folds: usize,
    /// leave_last: interactions per user held out.
    pub k: usize,
}

impl Default for SplitParams {
    fn default() -> Self {
        Self {
            method: SplitKind::Official,
            official: ["u1", "u2", "u3", "u4", "u5"].map(String::from).to_vec(),
            test_fraction: 0.2,
            folds: 1,
            k: 1,
        }
    }
}

impl SplitParams {
    /// The split these parameters describe.
    pub fn method(&self) -> SplitMethod {
        match self.method {
            SplitKind::Official => SplitMethod::Official {
                folds: self.official.clone(),
            },
            SplitKind::Random => SplitMethod::Random {
                test_fraction: self.test_fraction,
                folds: self.folds,
            },
            SplitKind::LeaveLast => SplitMethod::LeaveLast { k: self.k },
        }
    }
}

/// Splits ratings into train/test folds.
pub struct SplitRatings;

impl TypedStage for SplitRatings {
    type Params = SplitParams;
    const KIND: &'static str = "recommend.split";
    const DOC: &'static str = "Split interactions: official folds (u1..u5), random by rating (seeded), or per-user leave-last-K-out by time";
    const INPUTS: &'static [Slot] = &[RATINGS];
    const OUTPUT: &'static str = RatingSplit::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.method()
            .check()
            .map_err(|e| ParamError::rule("method", e.to_string()))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let r: &Ratings = input(inputs, 0)?;
        let folds = split(&r.data, &p.method(), ctx.seed)?;
        let stats: Vec<_> = folds.iter().map(|f| f.stats(&r.data)).collect();
        for s in &stats {
            ctx.log(&format!(
                "fold {}: {} train / {} test interactions; {} test users ({} never seen in training), {} test items ({} never seen)",
                s.fold, s.train, s.test, s.test_users, s.cold_users, s.test_items, s.cold_items
            ));
        }
        let protocol = match p.method() {
            SplitMethod::Official { folds } => format!("official folds {}", folds.join(", ")),
            SplitMethod::Random {
                test_fraction,
                folds: 1,
            } => format!("random {:.0}% of ratings held out", test_fraction * 100.0),
            SplitMethod::Random { folds, .. } => format!("random {folds}-fold by rating"),
            SplitMethod::LeaveLast { k } => format!("per-user leave-last-{k}-out by time"),
        };
        Ok(Arc::new(RatingSplit {
            protocol,
            folds,
            stats,
        }))
    }
}

/// The rating table and split inputs of a per-fold stage, checked to belong together.
pub fn ratings_and_split(
    inputs: &[Option<Arc<dyn Artifact>>],
) -> Result<(&Ratings, &RatingSplit), StageError> {
    let r: &Ratings = input(inputs, 0)?;
    let s: &RatingSplit = input(inputs, 1)?;
    let n = r.data.len() as u32;
    if s.folds
        .iter()
        .any(|f| f.train.iter().chain(&f.test).any(|&row| row >= n))
    {
        return Err(StageError::Other(
            "the split does not belong to these ratings (row out of range)".into(),
        ));
    }
    Ok((r, s))
}

/// Looks up the fitted models of `inputs[i]`.
pub fn recommenders(
    inputs: &[Option<Arc<dyn Artifact>>],
    i: usize,
) -> Result<Option<&Recommenders>, StageError> {
    match inputs.get(i) {
        Some(Some(a)) => Ok(Some(profundo_pipeline::registry::downcast(a)?)),
        _ => Ok(None),
    }
}
