//! `recommend.evaluate`: rating and top-K metrics per fold and their mean, for the model, the
//! popularity baseline (always) and an optional second model side by side.

use std::sync::Arc;

use profundo_core::manifest::Domain;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::MetricsArtifact;
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::model_dir::RecommendSummary;

use super::artifacts::Recommenders;
use super::{RATINGS, SPLIT, ratings_and_split, recommenders};
use crate::evaluation::{CUTOFFS, FoldContext, FoldEvaluation};

/// Parameters of `recommend.evaluate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {}

/// Evaluates a recommender.
pub struct EvaluateRecommender;

impl TypedStage for EvaluateRecommender {
    type Params = EvaluateParams;
    const KIND: &'static str = "recommend.evaluate";
    const DOC: &'static str = "RMSE/MAE per fold and mean; full-ranking HR/NDCG/Recall/MAP@{5,10,20} and coverage, with the popularity baseline";
    const INPUTS: &'static [Slot] = &[
        RATINGS,
        SPLIT,
        Slot {
            name: "model",
            accepts: &[Recommenders::TYPE],
            optional: false,
        },
        Slot {
            name: "baseline",
            accepts: &[Recommenders::TYPE],
            optional: true,
        },
    ];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn run(
        _p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (ratings, split) = ratings_and_split(inputs)?;
        let model = recommenders(inputs, 2)?
            .ok_or_else(|| StageError::Other("the model input is missing".into()))?;
        let baseline = recommenders(inputs, 3)?;
        let d = &ratings.data;
        let mut systems: Vec<(String, Vec<(String, FoldEvaluation)>)> = vec![
            (model.method.clone(), Vec::new()),
            ("popularity".into(), Vec::new()),
        ];
        if let Some(b) = baseline {
            systems.push((b.method.clone(), Vec::new()));
        }
        let mut stats = Vec::new();
        for fold in &split.folds {
            let Some(fm) = model.fold(&fold.name) else {
                continue;
            };
            let fc = FoldContext::new(d, &fold.train, &fold.test, &CUTOFFS);
            let mut evals = vec![fc.evaluate(&fm.fitted.model), fc.evaluate(&fc.popularity)];
            if let Some(b) = baseline {
                let bf = b.fold(&fold.name).ok_or_else(|| {
                    StageError::Other(format!(
                        "the baseline has no model for fold `{}`",
                        fold.name
                    ))
                })?;
                evals.push(fc.evaluate(&bf.fitted.model));
            }
            let e = &evals[0];
            ctx.log(&format!(
                "fold {}: {}NDCG@10 {:.4} HR@10 {:.4} (popularity NDCG@10 {:.4}); {} users ranked, {} cold-start",
                fold.name,
                e.rmse.map_or(String::new(), |r| format!("RMSE {r:.4} MAE {:.4}, ", e.mae.unwrap_or(f64::NAN))),
                e.at(10).map_or(f64::NAN, |r| r.ndcg),
                e.at(10).map_or(f64::NAN, |r| r.hr),
                evals[1].at(10).map_or(f64::NAN, |r| r.ndcg),
                e.warm_users,
                e.cold_users
            ));
            if let Some(s) = split.stats.iter().find(|s| s.fold == fold.name) {
                stats.push(serde_json::to_value(s).unwrap_or_default());
            }
            for (s, e) in systems.iter_mut().zip(evals) {
                s.1.push((fold.name.clone(), e));
            }
        }
        if systems[0].1.is_empty() {
            return Err(StageError::Other(
                "the model was trained on none of the split's folds".into(),
            ));
        }
        let mut metrics = system_metrics(&systems[0].1);
        metrics.insert("protocol".into(), split.protocol.clone().into());
        metrics.insert("method".into(), systems[0].0.clone().into());
        metrics.insert("folds".into(), Value::Array(stats));
        metrics.insert(
            "popularity".into(),
            Value::Object(system_metrics(&systems[1].1)),
        );
        if let Some((name, evals)) = systems.get(2) {
            let mut b = system_metrics(evals);
            b.insert("method".into(), name.clone().into());
            metrics.insert("baseline".into(), Value::Object(b));
        }
        let ratio = mean_of(&systems[0].1, |e| e.at(10).map(|r| r.ndcg))
            / mean_of(&systems[1].1, |e| e.at(10).map(|r| r.ndcg));
        if ratio.is_finite() {
            metrics.insert("ndcg@10_over_popularity".into(), json!(ratio));
        }
        let report = report(&split.protocol, &systems);
        let model_evals = &systems[0].1;
        let mean = |get: &dyn Fn(&FoldEvaluation) -> Option<f64>| {
            Some(mean_of(model_evals, get)).filter(|v| v.is_finite())
        };
        let summary = RecommendSummary {
            protocol: split.protocol.clone(),
            method: systems[0].0.clone(),
            folds: model_evals.len(),
            rmse: mean(&|e| e.rmse),
            mae: mean(&|e| e.mae),
            ndcg_at_10: mean(&|e| e.at(10).map(|r| r.ndcg)),
            hr_at_10: mean(&|e| e.at(10).map(|r| r.hr)),
            recall_at_10: mean(&|e| e.at(10).map(|r| r.recall)),
            ndcg_at_10_over_popularity: Some(ratio).filter(|r| r.is_finite()),
        };
        Ok(Arc::new(MetricsArtifact {
            metrics: Value::Object(metrics),
            summary: Some(MetricsArtifact::summary_of(&summary)?),
            domain: Some(Domain::Recommend),
            thresholds: Default::default(),
            report,
            plots: Vec::new(),
            root: ctx.work_dir.clone(),
        }))
    }
}

fn mean_of(
    evals: &[(String, FoldEvaluation)],
    get: impl Fn(&FoldEvaluation) -> Option<f64>,
) -> f64 {
    let v: Vec<f64> = evals.iter().filter_map(|(_, e)| get(e)).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// `{metric: {fold: value, ..., "mean": value}}` for one system.
fn system_metrics(evals: &[(String, FoldEvaluation)]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |name: String, get: &dyn Fn(&FoldEvaluation) -> Option<f64>| {
        let mut m = Map::new();
        for (fold, e) in evals {
            if let Some(v) = get(e) {
                m.insert(fold.clone(), json!(v));
            }
        }
        if !m.is_empty() {
            m.insert("mean".into(), json!(mean_of(evals, get)));
            out.insert(name, Value::Object(m));
        }
    };
    put("rmse".into(), &|e| e.rmse);
    put("mae".into(), &|e| e.mae);
    for k in CUTOFFS {
        put(format!("hr@{k}"), &move |e| e.at(k).map(|r| r.hr));
        put(format!("ndcg@{k}"), &move |e| e.at(k).map(|r| r.ndcg));
        put(format!("recall@{k}"), &move |e| e.at(k).map(|r| r.recall));
        put(format!("map@{k}"), &move |e| e.at(k).map(|r| r.map));
        put(format!("coverage@{k}"), &move |e| {
            e.at(k).map(|r| r.coverage)
        });
    }
    put("cold_start_users".into(), &|e| Some(e.cold_users as f64));
    out
}

fn report(protocol: &str, systems: &[(String, Vec<(String, FoldEvaluation)>)]) -> String {
    let fmt = |v: f64| {
        if v.is_finite() {
            format!("{v:.4}")
        } else {
            "-".into()
        }
    };
    let mut md = format!(
        "Protocol: {protocol}. Top-K is full ranking over the catalogue, the user's training items excluded; means over folds.\n\n| model | RMSE | MAE | HR@10 | NDCG@10 | Recall@10 | MAP@10 | coverage@10 |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (name, evals) in systems {
        let at10 = |f: fn(&crate::metrics::RankingSummary) -> f64| {
            fmt(mean_of(evals, |e| e.at(10).map(f)))
        };
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            fmt(mean_of(evals, |e| e.rmse)),
            fmt(mean_of(evals, |e| e.mae)),
            at10(|r| r.hr),
            at10(|r| r.ndcg),
            at10(|r| r.recall),
            at10(|r| r.map),
            at10(|r| r.coverage),
        ));
    }
    let (name, evals) = &systems[0];
    md.push_str(&format!(
        "\nPer fold, {name}:\n\n| fold | RMSE | MAE | HR@5 | NDCG@5 | HR@10 | NDCG@10 | HR@20 | NDCG@20 | cold-start users |\n|---|---|---|---|---|---|---|---|---|---|\n"
    ));
    for (fold, e) in evals {
        let r = |k: usize, f: fn(&crate::metrics::RankingSummary) -> f64| {
            fmt(e.at(k).map_or(f64::NAN, f))
        };
        md.push_str(&format!(
            "| {fold} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            fmt(e.rmse.unwrap_or(f64::NAN)),
            fmt(e.mae.unwrap_or(f64::NAN)),
            r(5, |x| x.hr),
            r(5, |x| x.ndcg),
            r(10, |x| x.hr),
            r(10, |x| x.ndcg),
            r(20, |x| x.hr),
            r(20, |x| x.ndcg),
            e.cold_users
        ));
    }
    md
}
