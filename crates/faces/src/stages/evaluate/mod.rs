//! `faces.evaluate`: the field's protocols on each fold's test people, for the network and
//! (optionally) a baseline side by side.
//!
//! - Closed set (every test person was seen in training, e.g. ORL 5/5): identification
//!   accuracy of each test image by its nearest training image.
//! - Verification (always): ROC over all genuine and impostor pairs of test images: AUC,
//!   EER, TAR at FAR 1% and 0.1%, and FAR/FRR at the threshold chosen on validation.
//! - Open set (test people never seen in training): each test person is enrolled from their
//!   first `enroll` images (template = mean embedding) and queried with the rest:
//!   identification accuracy among the enrolled, detection-and-identification rate at the
//!   threshold, and the rejection rate of people who are not enrolled (each person queried
//!   against a gallery of everyone else).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use profundo_pipeline::ParamError;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::MetricsArtifact;
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, downcast, input};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::embeddings::{FaceEmbeddings, FoldEmbeddings, Role, Similarity};
use crate::model_dir::FaceSummary;
use crate::score_norm::{Cohort, CohortStats, s_norm};
use crate::verification::{pair_scores, roc, threshold_at_far, verification};
use profundo_core::manifest::{Domain, Threshold};

mod scoring;
use scoring::*;
pub use scoring::{Scoring, template};

/// Parameters of `faces.evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {
    /// Open set: images per test person used to enroll them (the rest are queries).
    pub enroll: usize,
    /// Score normalisation of the network's scores: `none`, or `s_norm` against the
    /// fold's training images (the threshold is then re-chosen on validation in the
    /// normalised scale). The baseline is always scored raw, and so are the apps: this is
    /// an evaluation option (README, faces experiment log).
    pub score_norm: ScoreNorm,
    /// S-norm: how many of a face's highest cohort scores make its statistics (0 = all).
    pub cohort_top: usize,
    /// Where each fold's "same person" threshold comes from: `validation` (the training
    /// stage's choice on held-out images of *trained* people) or `other_folds` (the mean of
    /// the thresholds measured on the other folds' test people, at the EER or `target_far`:
    /// calibrated on people the network never saw, yet never on this fold's own test
    /// people). With raw scores, the exported model carries the re-chosen threshold.
    pub threshold: ThresholdRule,
    /// Choose the threshold at this false accept rate instead of the equal error rate, on
    /// the pairs the `threshold` rule uses (e.g. 0.01: a stranger matches a given person in
    /// about 1% of comparisons, which open-set identification against a gallery needs).
    /// With raw scores the exported model carries the threshold.
    pub target_far: Option<f64>,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            enroll: 5,
            score_norm: ScoreNorm::None,
            cohort_top: 0,
            threshold: ThresholdRule::Validation,
            target_far: None,
        }
    }
}

/// Where a fold's decision threshold comes from (see [`EvaluateParams::threshold`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// Chosen on validation images of the training people.
    #[default]
    Validation,
    /// Mean of the other folds' thresholds on their test people.
    OtherFolds,
}

/// Sets each scoring's threshold to the mean of the *other* folds' thresholds on their test
/// pairs: at the equal error rate, or at `target_far`. Needs at least two folds with test
/// pairs.
pub fn thresholds_from_other_folds(
    scorings: &mut [Scoring<'_>],
    target_far: Option<f64>,
) -> Result<(), StageError> {
    let own: Vec<Option<f64>> = scorings
        .iter()
        .map(|s| s.test_threshold(target_far))
        .collect();
    let at = match target_far {
        Some(far) => format!("threshold at FAR {}%", far * 100.0),
        None => "equal-error threshold".into(),
    };
    if own.iter().flatten().count() < 2 {
        return Err(StageError::Other(
            "`threshold = \"other_folds\"` needs at least two folds whose test people form \
             genuine and impostor pairs (use `validation` with a single split)"
                .into(),
        ));
    }
    for (k, s) in scorings.iter_mut().enumerate() {
        let others: Vec<f64> = own
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .filter_map(|(_, t)| *t)
            .collect();
        s.threshold = others.iter().sum::<f64>() / others.len() as f64;
        s.rule = format!("mean {at} of the other {} folds' test people", others.len());
    }
    Ok(())
}

/// How pair scores are normalised before the ROC and the decisions.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScoreNorm {
    /// Raw similarity.
    #[default]
    None,
    /// Symmetric normalisation against a cohort of training faces ([`crate::score_norm`]).
    SNorm,
}

/// Evaluates face embeddings.
pub struct EvaluateFaces;

impl TypedStage for EvaluateFaces {
    type Params = EvaluateParams;
    const KIND: &'static str = "faces.evaluate";
    const DOC: &'static str = "Closed-set identification, verification ROC/EER/TAR@FAR, open-set enrollment and rejection";
    const INPUTS: &'static [Slot] = &[
        Slot {
            name: "embeddings",
            accepts: &[FaceEmbeddings::TYPE],
            optional: false,
        },
        Slot {
            name: "baseline",
            accepts: &[FaceEmbeddings::TYPE],
            optional: true,
        },
    ];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if p.enroll == 0 {
            return Err(ParamError::rule("enroll", "must be at least 1"));
        }
        if let Some(far) = p.target_far
            && (far.is_nan() || far <= 0.0 || far >= 1.0)
        {
            return Err(ParamError::new("target_far", far, "must be in (0, 1)"));
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let model: &FaceEmbeddings = input(inputs, 0)?;
        let baseline: Option<&FaceEmbeddings> = match inputs.get(1) {
            Some(Some(a)) => Some(downcast(a)?),
            _ => None,
        };
        let mut metrics = serde_json::Map::new();
        metrics.insert("protocol".into(), model.protocol.clone().into());
        let mut curves = Vec::new();
        let mut columns = Vec::new();
        let mut thresholds = BTreeMap::new();
        let recalibrated = p.threshold == ThresholdRule::OtherFolds || p.target_far.is_some();
        for (key, emb) in std::iter::once(("model", model)).chain(baseline.map(|b| ("baseline", b)))
        {
            let mut per_fold = serde_json::Map::new();
            let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
            // The baseline is compared on the model's folds only.
            let wanted = |f: &&FoldEmbeddings| model.folds.iter().any(|m| m.fold == f.fold);
            let norm = match key {
                "model" => p.score_norm,
                _ => ScoreNorm::None,
            };
            let mut scorings: Vec<Scoring<'_>> = emb
                .folds
                .iter()
                .filter(wanted)
                .map(|f| Scoring::new(f, emb.similarity, norm, p.cohort_top))
                .collect();
            match (p.threshold, p.target_far) {
                (ThresholdRule::OtherFolds, far) => {
                    thresholds_from_other_folds(&mut scorings, far)?
                }
                (ThresholdRule::Validation, Some(far)) => scorings
                    .iter_mut()
                    .for_each(|s| s.validation_threshold_at_far(far)),
                (ThresholdRule::Validation, None) => {}
            }
            for scoring in &scorings {
                let f = scoring.f;
                let (m, g, i) = evaluate_fold(f, scoring, p.enroll);
                ctx.log(&format!("{} fold {}: {}", emb.method, f.fold, m));
                per_fold.insert(f.fold.clone(), m);
                genuine.extend(g);
                impostor.extend(i);
                // Apps score raw similarity (of embeddings centred and whitened as in
                // training): only a threshold in that scale may replace the model's.
                if key == "model" && recalibrated && scoring.norm() == ScoreNorm::None {
                    thresholds.insert(
                        f.fold.clone(),
                        Threshold {
                            value: scoring.threshold,
                            rule: scoring.rule.clone(),
                        },
                    );
                }
            }
            let folds: Vec<Value> = per_fold.values().cloned().collect();
            let mean = mean_of(&folds);
            let points = roc(&genuine, &impostor);
            let step = (points.len() / 2000).max(1);
            curves.push((
                emb.method.clone(),
                points
                    .iter()
                    .step_by(step)
                    .map(|p| (p.far, p.tar))
                    .collect::<Vec<_>>(),
            ));
            columns.push((emb.method.clone(), mean.clone()));
            metrics.insert(
                key.into(),
                json!({"method": emb.method, "folds": per_fold, "mean": mean}),
            );
        }
        let plot = "roc.png";
        profundo_core::plots::roc_curves(
            &ctx.work_dir.join(plot),
            &format!("Verification ROC — {}", model.protocol),
            &curves,
            1e-4,
        )?;
        let summary = summary(
            &model.protocol,
            &columns[0].0,
            model.folds.len(),
            &columns[0].1,
        )?;
        Ok(Arc::new(MetricsArtifact {
            metrics: Value::Object(metrics),
            summary: Some(MetricsArtifact::summary_of(&summary)?),
            domain: Some(Domain::Faces),
            thresholds,
            report: report(&model.protocol, &columns),
            plots: vec![plot.into()],
            root: ctx.work_dir.clone(),
        }))
    }
}

/// Metrics of one fold, plus the genuine and impostor scores of its test pairs.
pub fn evaluate_fold(
    f: &FoldEmbeddings,
    scoring: &Scoring<'_>,
    enroll: usize,
) -> (Value, Vec<f64>, Vec<f64>) {
    let threshold = scoring.threshold;
    let test = f.with_role(Role::Test);
    let known: Vec<usize> = (0..f.items.len())
        .filter(|&i| f.items[i].role != Role::Test)
        .collect();
    let known_people: BTreeSet<&str> = known.iter().map(|&i| f.items[i].person.as_str()).collect();
    let test_people: BTreeSet<&str> = test.iter().map(|&i| f.items[i].person.as_str()).collect();
    let closed = test_people.iter().all(|p| known_people.contains(p));
    let open = test_people.iter().all(|p| !known_people.contains(p));
    let score = |a: usize, b: usize| scoring.items(a, b);

    let labels: Vec<&str> = test.iter().map(|&i| f.items[i].person.as_str()).collect();
    let (genuine, impostor) = pair_scores(&labels, |a, b| score(test[a], test[b]));
    let ver = verification(&genuine, &impostor);
    let far =
        impostor.iter().filter(|&&s| s >= threshold).count() as f64 / impostor.len().max(1) as f64;
    let frr =
        genuine.iter().filter(|&&s| s < threshold).count() as f64 / genuine.len().max(1) as f64;
    let mut m = json!({
        "test_people": test_people.len(),
        "test_images": test.len(),
        "auc": ver.auc,
        "eer": ver.eer,
        "tar_at_far_1e-2": ver.tar_at_far_1e2,
        "tar_at_far_1e-3": ver.tar_at_far_1e3,
        "genuine_pairs": ver.genuine_pairs,
        "impostor_pairs": ver.impostor_pairs,
        "threshold": threshold,
        "threshold_rule": scoring.rule,
        "score_norm": scoring.norm(),
        "far_at_threshold": far,
        "frr_at_threshold": frr,
    });
    if closed && !known.is_empty() {
        // Nearest training image (the ORL protocol).
        let hits = test
            .iter()
            .filter(|&&q| {
                let best = known
                    .iter()
                    .map(|&a| (a, score(q, a)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                best.is_some_and(|(b, _)| f.items[b].person == f.items[q].person)
            })
            .count();
        m["closed_set_accuracy"] = json!(hits as f64 / test.len().max(1) as f64);
    }
    if open && test_people.len() >= 2 {
        m["open_set"] = open_set(f, scoring, &test, enroll);
    }
    (m, genuine, impostor)
}

/// The manifest's headline from the model's mean over folds (`mean`, as
/// [`evaluate_fold`] writes each fold's).
fn summary(
    protocol: &str,
    method: &str,
    folds: usize,
    mean: &Value,
) -> Result<FaceSummary, StageError> {
    let get = |ptr: &str| mean.pointer(ptr).and_then(Value::as_f64);
    let need = |ptr: &str| {
        get(ptr).ok_or_else(|| {
            StageError::Other(format!(
                "the evaluation has no `{}` to summarise",
                &ptr[1..]
            ))
        })
    };
    Ok(FaceSummary {
        protocol: protocol.to_string(),
        method: method.to_string(),
        folds,
        auc: need("/auc")?,
        eer: need("/eer")?,
        tar_at_far_1e2: need("/tar_at_far_1e-2")?,
        far_at_threshold: need("/far_at_threshold")?,
        frr_at_threshold: need("/frr_at_threshold")?,
        closed_set_accuracy: get("/closed_set_accuracy"),
        open_set_identification: get("/open_set/identification_accuracy"),
        open_set_detection_identification: get("/open_set/detection_identification_rate"),
        open_set_rejection: get("/open_set/rejection_rate_not_enrolled"),
    })
}

/// Mean of the numeric leaves of several JSON objects of the same shape.
pub fn mean_of(values: &[Value]) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match first {
        Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for k in o.keys() {
                let column: Vec<Value> = values.iter().filter_map(|v| v.get(k).cloned()).collect();
                if column.len() == values.len() {
                    out.insert(k.clone(), mean_of(&column));
                }
            }
            Value::Object(out)
        }
        Value::Number(_) => {
            let nums: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
            json!(nums.iter().sum::<f64>() / nums.len().max(1) as f64)
        }
        other => other.clone(),
    }
}

fn report(protocol: &str, columns: &[(String, Value)]) -> String {
    let rows: [(&str, &str); 10] = [
        ("closed-set identification accuracy", "/closed_set_accuracy"),
        ("verification AUC", "/auc"),
        ("verification EER", "/eer"),
        ("TAR @ FAR 1%", "/tar_at_far_1e-2"),
        ("TAR @ FAR 0.1%", "/tar_at_far_1e-3"),
        ("FAR at the decision threshold", "/far_at_threshold"),
        ("FRR at the decision threshold", "/frr_at_threshold"),
        (
            "open set: identification of enrolled people",
            "/open_set/identification_accuracy",
        ),
        (
            "open set: detection + identification at threshold",
            "/open_set/detection_identification_rate",
        ),
        (
            "open set: rejection of non-enrolled people",
            "/open_set/rejection_rate_not_enrolled",
        ),
    ];
    let mut md = format!("Protocol: {protocol}. Means over folds; test people only.\n\n| metric |");
    for (name, _) in columns {
        md.push_str(&format!(" {name} |"));
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(columns.len()));
    md.push('\n');
    for (label, ptr) in rows {
        if columns.iter().all(|(_, v)| v.pointer(ptr).is_none()) {
            continue;
        }
        md.push_str(&format!("| {label} |"));
        for (_, v) in columns {
            match v.pointer(ptr).and_then(Value::as_f64) {
                Some(x) => md.push_str(&format!(" {x:.4} |")),
                None => md.push_str(" - |"),
            }
        }
        md.push('\n');
    }
    md.push_str("\nROC curve: `plots/<stage>-roc.png`.\n");
    md
}

#[cfg(test)]
mod tests;
