//! Hyper-parameter search without looking at the test fold.
//!
//! A pipeline declares a search space under `[stages.<train>.search]`: values to try for any
//! of the `training` parameters, combined as a full grid or drawn at random (seeded). Each
//! setting is fitted on the fold's training interactions minus a held-out validation cut
//! and scored on that cut: RMSE for rating models, NDCG@10 (full ranking, the fitted items
//! excluded) for ranking models. The winner is then refit on all of the fold's training
//! interactions, and only that model ever meets the test fold.
//!
//! `scope = "each_fold"` searches inside every fold (nested cross-validation);
//! `scope = "first_fold"` searches on the first fold's training data only and freezes the
//! winner for the other folds (cheaper, and the other folds' test sets are then untouched
//! by any choice).

use std::collections::BTreeMap;
use std::fmt;

use burn::tensor::Device;
use profundo_pipeline::ParamError;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::dataset::Interactions;
use crate::error::RecommendError;
use crate::evaluation::FoldContext;
use crate::split::cut_validation;
use crate::train::{FitConfig, ModelKind, fit};

/// A value a search tries for one `training` parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SearchValue {
    /// An integer (`factors = [32, 64]`).
    Int(i64),
    /// A number (`reg = [0.05, 0.1]`).
    Float(f64),
    /// A switch (`refit = [true, false]`).
    Bool(bool),
    /// A name (`optimizer = ["adam", "sgd"]`).
    Text(String),
}

impl fmt::Display for SearchValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchValue::Int(v) => write!(f, "{v}"),
            SearchValue::Float(v) => write!(f, "{v}"),
            SearchValue::Bool(v) => write!(f, "{v}"),
            SearchValue::Text(v) => write!(f, "{v}"),
        }
    }
}

/// How settings are drawn from the space.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SearchMethod {
    /// Every combination of the listed values.
    #[default]
    Grid,
    /// `trials` distinct combinations drawn at random (seeded by the pipeline seed).
    Random,
}

/// Where the search runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SearchScope {
    /// Inside every fold, on a validation cut of that fold's training interactions.
    #[default]
    EachFold,
    /// On the first fold's training interactions only; the winner is used for every fold.
    FirstFold,
}

/// What a setting is scored by on the validation cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchMetric {
    /// Root mean squared error of the predicted ratings (lower is better).
    Rmse,
    /// NDCG@10 over the full catalogue, the fitted items excluded (higher is better).
    NdcgAt10,
}

impl SearchMetric {
    /// The metric that selects models of `kind`: RMSE for rating models, NDCG@10 otherwise.
    pub fn for_kind(kind: ModelKind) -> Self {
        match kind {
            ModelKind::Bpr | ModelKind::Popularity => SearchMetric::NdcgAt10,
            ModelKind::GlobalMean | ModelKind::Biases | ModelKind::Mf | ModelKind::Svdpp => {
                SearchMetric::Rmse
            }
        }
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            SearchMetric::Rmse => "validation RMSE",
            SearchMetric::NdcgAt10 => "validation NDCG@10",
        }
    }

    /// Whether `a` is a better score than `b` (a NaN score is never better).
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            _ if a.is_nan() => false,
            _ if b.is_nan() => true,
            SearchMetric::Rmse => a < b,
            SearchMetric::NdcgAt10 => a > b,
        }
    }
}

fn default_trials() -> usize {
    8
}

fn default_valid_fraction() -> f64 {
    0.1
}

/// The largest number of settings one search may fit per fold.
pub const MAX_SETTINGS: usize = 256;

/// A search declared in a pipeline (`[stages.<train>.search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// `grid` (default: every combination) or `random`.
    #[serde(default)]
    pub method: SearchMethod,
    /// Random search: how many settings to draw (default 8).
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// `each_fold` (default: nested, a search inside every fold) or `first_fold`.
    #[serde(default)]
    pub scope: SearchScope,
    /// Share of a fold's training interactions held out to score the settings (default
    /// 0.1). The test fold is never used.
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    /// Values to try for each `training` parameter, e.g. `reg = [0.05, 0.1, 0.2]`.
    pub space: BTreeMap<String, Vec<SearchValue>>,
}

/// One setting of a search: `(parameter, value)` pairs in parameter-name order.
pub type Setting = Vec<(String, SearchValue)>;

impl SearchConfig {
    /// Every combination of the space, in order (the last parameter varies fastest).
    pub fn grid(&self) -> Vec<Setting> {
        let mut out: Vec<Setting> = vec![Vec::new()];
        for (name, values) in &self.space {
            out = out
                .into_iter()
                .flat_map(|s| {
                    values.iter().map(move |v| {
                        let mut s = s.clone();
                        s.push((name.clone(), v.clone()));
                        s
                    })
                })
                .collect();
        }
        out
    }

    /// The settings to fit: the whole grid, or `trials` distinct draws from it (all of it
    /// when it is smaller), in a seeded order.
    pub fn settings(&self, seed: u64) -> Vec<Setting> {
        let mut grid = self.grid();
        if self.method == SearchMethod::Random {
            grid.shuffle(&mut StdRng::seed_from_u64(seed));
            grid.truncate(self.trials);
        }
        grid
    }

    /// Checks the search against the stage's `training` settings for `kind`: every setting
    /// must make a valid configuration, before anything is fitted.
    pub fn check(&self, base: &FitConfig, kind: ModelKind) -> std::result::Result<(), ParamError> {
        if self.space.is_empty() {
            return Err(ParamError::rule(
                "space",
                "names no parameter: give values to try, e.g. `reg = [0.05, 0.1]`",
            ));
        }
        if let Some((name, _)) = self.space.iter().find(|(_, v)| v.is_empty()) {
            return Err(ParamError::rule(
                format!("space.{name}"),
                "lists no value to try",
            ));
        }
        if !(self.valid_fraction > 0.0 && self.valid_fraction < 0.5) {
            return Err(ParamError::new(
                "valid_fraction",
                self.valid_fraction,
                "must be in (0, 0.5)",
            ));
        }
        if self.method == SearchMethod::Random && self.trials == 0 {
            return Err(ParamError::new("trials", 0, "must be at least 1"));
        }
        let size = self
            .space
            .values()
            .try_fold(1usize, |n, v| n.checked_mul(v.len()))
            .unwrap_or(usize::MAX);
        let fitted = match self.method {
            SearchMethod::Grid => size,
            SearchMethod::Random => size.min(self.trials),
        };
        if fitted > MAX_SETTINGS {
            return Err(ParamError::rule(
                "space",
                format!(
                    "makes {fitted} settings to fit per fold, more than {MAX_SETTINGS}: use `method = \"random\"` with `trials`"
                ),
            ));
        }
        for setting in self.grid() {
            apply(base, &setting)?.check(kind).map_err(|mut e| {
                e.expected = format!("{} (in the setting {})", e.expected, describe(&setting));
                e.within("space")
            })?;
        }
        Ok(())
    }
}

/// `reg=0.1 factors=64`.
pub fn describe(setting: &[(String, SearchValue)]) -> String {
    setting
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `base` with the setting's values put in.
pub fn apply(
    base: &FitConfig,
    setting: &[(String, SearchValue)],
) -> std::result::Result<FitConfig, ParamError> {
    // A pass-through edge: the typed configuration goes through its serde form so that
    // any of its fields can be searched, and comes back checked by its own deserialiser.
    let mut value = serde_json::to_value(base)
        .map_err(|e| ParamError::rule("space", format!("cannot represent the settings: {e}")))?;
    let fields = value
        .as_object_mut()
        .ok_or_else(|| ParamError::rule("space", "the training settings are not a table"))?;
    for (name, v) in setting {
        if !fields.contains_key(name) {
            let known: Vec<&str> = fields.keys().map(String::as_str).collect();
            return Err(ParamError::new(
                format!("space.{name}"),
                v,
                format!(
                    "is not a `training` parameter (one of: {})",
                    known.join(", ")
                ),
            ));
        }
        let v_json = serde_json::to_value(v)
            .map_err(|e| ParamError::new(format!("space.{name}"), v, e.to_string()))?;
        fields.insert(name.clone(), v_json);
    }
    serde_json::from_value(value).map_err(|e| {
        ParamError::rule(
            "space",
            format!(
                "({}) does not fit the training settings: {e}",
                describe(setting)
            ),
        )
    })
}

/// One fold's search: every setting's validation score and the winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldSearch {
    /// The fold whose training interactions were searched.
    pub fold: String,
    /// Interactions the settings were fitted on.
    pub fit_rows: usize,
    /// Interactions they were scored on.
    pub valid_rows: usize,
    /// Validation score of each setting, in the record's setting order (NaN: no score,
    /// e.g. no validation user with a rating left).
    pub scores: Vec<f64>,
    /// Index of the winning setting.
    pub best: usize,
    /// The winner's training configuration, as refit on the whole fold.
    pub chosen: FitConfig,
    /// Seconds the search took.
    pub seconds: f64,
}

/// The search a training stage ran, for its report and `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    /// Grid or random.
    pub method: SearchMethod,
    /// Each fold or the first one.
    pub scope: SearchScope,
    /// What selected the winner.
    pub metric: SearchMetric,
    /// The validation share of each searched fold's training interactions.
    pub valid_fraction: f64,
    /// The settings tried, as `(parameter, value)` text pairs.
    pub settings: Vec<Vec<(String, String)>>,
    /// One entry per searched fold.
    pub folds: Vec<FoldSearch>,
}

impl SearchRecord {
    /// An empty record for `settings` of `search` on models of `kind`.
    pub fn new(search: &SearchConfig, kind: ModelKind, settings: &[Setting]) -> Self {
        Self {
            method: search.method,
            scope: search.scope,
            metric: SearchMetric::for_kind(kind),
            valid_fraction: search.valid_fraction,
            settings: settings
                .iter()
                .map(|s| s.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                .collect(),
            folds: Vec::new(),
        }
    }

    /// A Markdown section: the settings as rows, one score column per searched fold and
    /// their mean, each fold's winner in bold.
    pub fn markdown(&self) -> String {
        let scope = match self.scope {
            SearchScope::EachFold => "inside each fold",
            SearchScope::FirstFold => "on the first fold, winner used for every fold",
        };
        let mut md = format!(
            "{} search {scope}: {} settings scored by {} on {:.0}% of each searched fold's training interactions (never the test fold); the winner is refit on the whole fold.\n\n| # | setting |",
            match self.method {
                SearchMethod::Grid => "Grid",
                SearchMethod::Random => "Random",
            },
            self.settings.len(),
            self.metric.name(),
            self.valid_fraction * 100.0
        );
        for f in &self.folds {
            md.push_str(&format!(" {} |", f.fold));
        }
        md.push_str(" mean |\n|---|---|");
        md.push_str(&"---|".repeat(self.folds.len() + 1));
        md.push('\n');
        for (i, s) in self.settings.iter().enumerate() {
            let text: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
            md.push_str(&format!("| {} | {} |", i + 1, text.join(" ")));
            for f in &self.folds {
                let v = f.scores.get(i).copied().unwrap_or(f64::NAN);
                if f.best == i {
                    md.push_str(&format!(" **{v:.4}** |"));
                } else {
                    md.push_str(&format!(" {v:.4} |"));
                }
            }
            md.push_str(&format!(" {:.4} |\n", self.mean_score(i)));
        }
        md
    }

    /// The mean over searched folds of setting `i`'s score.
    pub fn mean_score(&self, i: usize) -> f64 {
        let v: Vec<f64> = self
            .folds
            .iter()
            .filter_map(|f| f.scores.get(i).copied())
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }
}

/// Scores `cfg` on one split of a fold's training interactions: fits on `fit_rows`,
/// evaluates on `valid_rows` by `metric`.
#[allow(clippy::too_many_arguments)]
pub fn score_setting(
    d: &Interactions,
    fit_rows: &[u32],
    valid_rows: &[u32],
    kind: ModelKind,
    cfg: &FitConfig,
    metric: SearchMetric,
    seed: u64,
    device: &Device,
    label: &str,
) -> Result<f64> {
    let fitted = fit(d, fit_rows, kind, cfg, seed, device, label)?;
    let e = FoldContext::new(d, fit_rows, valid_rows, &[10]).evaluate(&fitted.model);
    Ok(match metric {
        SearchMetric::Rmse => e.rmse.unwrap_or(f64::NAN),
        SearchMetric::NdcgAt10 => e.at(10).map_or(f64::NAN, |r| r.ndcg),
    })
}

/// Runs the search on one fold's training rows `train`: cuts the validation share with
/// `cut_seed`, fits and scores every setting with `fit_seed`, and returns the scores and the
/// winner. `progress` hears about every setting scored.
#[allow(clippy::too_many_arguments)]
pub fn search_fold(
    d: &Interactions,
    fold: &str,
    train: &[u32],
    kind: ModelKind,
    base: &FitConfig,
    search: &SearchConfig,
    settings: &[Setting],
    cut_seed: u64,
    fit_seed: u64,
    device: &Device,
    mut progress: impl FnMut(usize, &Setting, f64, f64),
) -> Result<FoldSearch> {
    let t0 = std::time::Instant::now();
    let metric = SearchMetric::for_kind(kind);
    let (fit_rows, valid_rows) = cut_validation(train, search.valid_fraction, cut_seed);
    if valid_rows.is_empty() {
        return Err(RecommendError::Config(format!(
            "fold {fold}: too few training interactions ({}) to hold out a validation cut for the search",
            train.len()
        )));
    }
    let mut scores = Vec::with_capacity(settings.len());
    let (mut best, mut chosen) = (0, base.clone());
    for (i, setting) in settings.iter().enumerate() {
        let t = std::time::Instant::now();
        let cfg = apply(base, setting).map_err(|e| RecommendError::Config(e.to_string()))?;
        let label = format!("{fold} search {}/{}", i + 1, settings.len());
        let s = score_setting(
            d,
            &fit_rows,
            &valid_rows,
            kind,
            &cfg,
            metric,
            fit_seed,
            device,
            &label,
        )?;
        if i == 0 || metric.better(s, scores[best]) {
            best = i;
            chosen = cfg;
        }
        scores.push(s);
        progress(i, setting, s, t.elapsed().as_secs_f64());
    }
    Ok(FoldSearch {
        fold: fold.to_string(),
        fit_rows: fit_rows.len(),
        valid_rows: valid_rows.len(),
        scores,
        best,
        chosen,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(toml_text: &str) -> SearchConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_grid_is_every_combination_and_random_draws_are_seeded_and_distinct() {
        let s = space("[space]\nreg = [0.05, 0.1, 0.2]\nfactors = [32, 64]\n");
        let grid = s.grid();
        assert_eq!(grid.len(), 6);
        assert_eq!(describe(&grid[0]), "factors=32 reg=0.05");
        assert_eq!(describe(&grid[5]), "factors=64 reg=0.2");
        let r = SearchConfig {
            method: SearchMethod::Random,
            trials: 4,
            ..s.clone()
        };
        let (a, b) = (r.settings(7), r.settings(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        let mut texts: Vec<String> = a.iter().map(|x| describe(x)).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 4, "draws repeat: {texts:?}");
        assert_ne!(r.settings(8), a, "another seed, another draw");
    }

    #[test]
    fn settings_are_applied_to_the_training_configuration() {
        let base = FitConfig::default();
        let s = space("[space]\nreg = [0.2]\nfactors = [16]\noptimizer = [\"sgd\"]\n");
        let cfg = apply(&base, &s.grid()[0]).unwrap();
        assert_eq!((cfg.reg, cfg.factors), (0.2, 16));
        assert_eq!(cfg.optimizer, crate::train::OptimizerKind::Sgd);
        assert_eq!(cfg.lr, base.lr, "untouched settings stay");
        // An integer where a number is expected is fine; the reverse is not.
        let ok = space("[space]\nreg = [1]\n");
        assert_eq!(apply(&base, &ok.grid()[0]).unwrap().reg, 1.0);
    }

    #[test]
    fn bad_spaces_are_named_before_anything_is_fitted() {
        let base = FitConfig::default();
        let check = |t: &str| {
            space(t)
                .check(&base, ModelKind::Mf)
                .unwrap_err()
                .to_string()
        };
        let e = check("[space]\nregg = [0.1]\n");
        assert!(
            e.contains("space.regg") && e.contains("not a `training` parameter"),
            "{e}"
        );
        let e = check("[space]\nfactors = [0.5]\n");
        assert!(e.contains("factors=0.5"), "{e}");
        let e = check("[space]\nfactors = [0, 8]\n");
        assert!(e.contains("factors=0") && e.contains("at least 1"), "{e}");
        let e = check("[space]\nreg = []\n");
        assert!(e.contains("space.reg") && e.contains("no value"), "{e}");
        let e = check("valid_fraction = 0.0\n[space]\nreg = [0.1]\n");
        assert!(e.contains("valid_fraction"), "{e}");
        let e = check("[space]\n");
        assert!(e.contains("names no parameter"), "{e}");
        let big = "[space]\na_ = [1]\n".replace(
            "a_ = [1]",
            "reg = [1,2,3,4,5,6,7]\nlr = [1,2,3,4,5,6,7]\nfactors = [1,2,3,4,5,6]",
        );
        let e = check(&big);
        assert!(e.contains("294 settings"), "{e}");
        assert!(
            SearchConfig {
                method: SearchMethod::Random,
                trials: 10,
                ..space(&big)
            }
            .check(&base, ModelKind::Mf)
            .is_ok()
        );
    }

    #[test]
    fn the_winner_is_the_lowest_rmse_or_the_highest_ndcg() {
        let m = SearchMetric::Rmse;
        assert!(m.better(0.9, 0.95) && !m.better(0.95, 0.9) && !m.better(f64::NAN, 0.9));
        assert!(m.better(0.9, f64::NAN));
        let n = SearchMetric::NdcgAt10;
        assert!(n.better(0.4, 0.3) && !n.better(0.3, 0.4));
        assert_eq!(SearchMetric::for_kind(ModelKind::Bpr), n);
        assert_eq!(SearchMetric::for_kind(ModelKind::Mf), m);
    }
}
