//! The recommender's manifest section ([`RecommenderSection`]) and the headline an
//! evaluation records in it ([`RecommendSummary`]).

use profundo_core::manifest::{Domain, ModelManifest, ModelSection};
use serde::{Deserialize, Serialize};

use crate::train::{FitConfig, ModelKind};

/// The recommendation section of a model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommenderSection {
    /// The model kind.
    pub kind: ModelKind,
    /// The method in words.
    pub method: String,
    /// Latent factors (0 for baselines).
    pub factors: usize,
    /// Whether scores are predicted ratings (else only a ranking).
    pub predicts_ratings: bool,
    /// The interactions it was fitted on.
    pub data: RatingData,
    /// How it was trained.
    pub training: RecommenderTraining,
}

/// What a recommender was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingData {
    /// Where the ratings came from.
    pub source: String,
    /// Users known.
    pub users: usize,
    /// Items known.
    pub items: usize,
    /// Whether ratings are explicit.
    pub explicit: bool,
    /// The rating scale `[min, max]`.
    pub scale: [f32; 2],
}

/// How a recommender was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommenderTraining {
    /// Hyper-parameters.
    pub config: FitConfig,
    /// The fold.
    pub fold: String,
    /// Interactions fitted on.
    pub fit_interactions: usize,
    /// Interactions that picked the epoch.
    pub valid_interactions: usize,
    /// The kept epoch (0 for baselines).
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Why training ended.
    pub stop: String,
    /// The fold's seed.
    pub seed: u64,
    /// Backend it was trained on.
    pub backend: String,
    /// Seconds.
    pub seconds: f64,
}

/// The headline of a recommendation evaluation (means over folds), as a model manifest
/// records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendSummary {
    /// The split protocol.
    pub protocol: String,
    /// The method evaluated.
    pub method: String,
    /// Folds averaged.
    pub folds: usize,
    /// RMSE of predicted ratings (rating models).
    pub rmse: Option<f64>,
    /// MAE of predicted ratings (rating models).
    pub mae: Option<f64>,
    /// NDCG@10 of the top-10 list.
    pub ndcg_at_10: Option<f64>,
    /// Hit rate @10.
    pub hr_at_10: Option<f64>,
    /// Recall @10.
    pub recall_at_10: Option<f64>,
    /// NDCG@10 over the popularity ranking's.
    pub ndcg_at_10_over_popularity: Option<f64>,
}

impl ModelSection for RecommenderSection {
    const DOMAIN: Domain = Domain::Recommend;
    type Metrics = RecommendSummary;
}

/// A recommender's manifest.
pub type RecommenderManifest = ModelManifest<RecommenderSection>;
