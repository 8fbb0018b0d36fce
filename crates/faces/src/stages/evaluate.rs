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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::MetricsArtifact;
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, downcast, input};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::embeddings::{FaceEmbeddings, FoldEmbeddings, Role, Similarity};
use crate::score_norm::{Cohort, CohortStats, center_embedding, mean_embedding, s_norm};
use crate::verification::{pair_scores, roc, threshold_at_far, verification};
use crate::whiten::Whitening;

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
    /// Centre the network's embeddings: subtract the mean embedding of the fold's training
    /// images and re-normalise before any score.
    /// The validation threshold is re-chosen on the centred embeddings, and the exported
    /// model stores the mean, so the apps centre theirs the same way.
    pub center: bool,
    /// With `center`: also whiten the centred embeddings (PCA whitening fitted on the fold's
    /// training images, each ensemble member on its own; [`crate::whiten`]) with this
    /// shrinkage, e.g. 0.1. The exported model stores the matrices, and the apps apply them.
    pub whiten: Option<f64>,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            enroll: 5,
            score_norm: ScoreNorm::None,
            cohort_top: 0,
            threshold: ThresholdRule::Validation,
            target_far: None,
            center: false,
            whiten: None,
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

/// How a fold's embeddings were transformed before scoring, for the exported model.
#[derive(Default)]
struct Transform {
    /// The training images' mean embedding, subtracted.
    center: Option<Vec<f32>>,
    /// The whitening fitted on the centred training images.
    whiten: Option<Whitening>,
}

/// Fold `f` with its embeddings centred on its training images' mean, then whitened with
/// shrinkage `whiten` over `members` blocks when given (both returned too), and its
/// validation threshold re-chosen on the new embeddings; unchanged (borrowed) without
/// training images.
fn transformed(
    f: &FoldEmbeddings,
    sim: Similarity,
    whiten: Option<f64>,
    members: usize,
) -> (Cow<'_, FoldEmbeddings>, Transform) {
    let train = f.with_role(Role::Train);
    let Some(mean) = mean_embedding(train.iter().map(|&i| f.vector(i)), f.dim) else {
        return (Cow::Borrowed(f), Transform::default());
    };
    let mut g = f.clone();
    for v in g.vectors.chunks_mut(f.dim.max(1)) {
        center_embedding(v, &mean);
    }
    let whitening = whiten.and_then(|shrink| {
        let rows: Vec<&[f32]> = train.iter().map(|&i| g.vector(i)).collect();
        Whitening::fit(&rows, f.dim, members, shrink)
    });
    if let Some(w) = &whitening {
        g.vectors.chunks_mut(f.dim.max(1)).for_each(|v| w.apply(v));
    }
    if let Some(t) = Scoring::new(&g, sim, ScoreNorm::None, 0).threshold_of(Role::Valid, None) {
        g.threshold = t;
        g.threshold_rule = match whitening {
            Some(_) => "equal error rate on validation pairs (centred, whitened embeddings)",
            None => "equal error rate on validation pairs (centred embeddings)",
        }
        .into();
    }
    let transform = Transform {
        center: Some(mean),
        whiten: whitening,
    };
    (Cow::Owned(g), transform)
}

/// How many ensemble members fold `f`'s embeddings join: `decision.members` of its model's
/// manifest (1 without a model or before ensembles).
fn members_of(emb: &FaceEmbeddings, f: &FoldEmbeddings) -> usize {
    f.model_dir
        .as_ref()
        .and_then(|rel| profundo_core::manifest::Manifest::load(&emb.root.join(rel)).ok())
        .and_then(|m| m.decision.get("members").and_then(Value::as_u64))
        .map_or(1, |m| m.max(1) as usize)
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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        if p.enroll == 0 {
            return Err(("enroll".into(), "must be at least 1".into()));
        }
        if let Some(far) = p.target_far
            && (far.is_nan() || far <= 0.0 || far >= 1.0)
        {
            return Err(("target_far".into(), format!("must be in (0, 1), got {far}")));
        }
        if let Some(w) = p.whiten {
            if !p.center {
                return Err(("whiten".into(), "needs `center = true`".into()));
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(("whiten".into(), format!("must be 0 or more, got {w}")));
            }
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
        let mut decisions = serde_json::Map::new();
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
            // (fold, how it was transformed)
            let folds: Vec<(Cow<'_, FoldEmbeddings>, Transform)> = emb
                .folds
                .iter()
                .filter(wanted)
                .map(|f| {
                    if key == "model" && p.center {
                        transformed(f, emb.similarity, p.whiten, members_of(emb, f))
                    } else {
                        (Cow::Borrowed(f), Transform::default())
                    }
                })
                .collect();
            let mut scorings: Vec<Scoring<'_>> = folds
                .iter()
                .map(|(f, _)| Scoring::new(f, emb.similarity, norm, p.cohort_top))
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
            for (scoring, (_, transform)) in scorings.iter().zip(&folds) {
                let f = scoring.f;
                let (m, g, i) = evaluate_fold(f, scoring, p.enroll);
                ctx.log(&format!("{} fold {}: {}", emb.method, f.fold, m));
                per_fold.insert(f.fold.clone(), m);
                genuine.extend(g);
                impostor.extend(i);
                // Apps score raw (or centred) similarity: only a threshold in that scale
                // may replace the exported model's.
                if key == "model"
                    && (recalibrated || transform.center.is_some())
                    && scoring.norm() == ScoreNorm::None
                {
                    let mut d = json!({"threshold": scoring.threshold, "rule": scoring.rule});
                    if let Some(c) = &transform.center {
                        d["center"] = json!(c);
                    }
                    if let Some(w) = &transform.whiten {
                        d["whiten"] = json!(w);
                    }
                    decisions.insert(f.fold.clone(), d);
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
        if !decisions.is_empty() {
            // `export.model` applies the exported fold's entry to the model's decision rule.
            metrics.insert("decision".into(), Value::Object(decisions));
        }
        let plot = "roc.png";
        profundo_core::plots::roc_curves(
            &ctx.work_dir.join(plot),
            &format!("Verification ROC — {}", model.protocol),
            &curves,
            1e-4,
        )?;
        Ok(Arc::new(MetricsArtifact {
            metrics: Value::Object(metrics),
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

/// How one fold's pairs are scored: raw similarity, or S-norm against the fold's training
/// images with the threshold re-chosen on its validation images.
pub struct Scoring<'a> {
    /// The fold scored.
    pub f: &'a FoldEmbeddings,
    sim: Similarity,
    /// The S-norm cohort; `None` scores raw similarity.
    cohort: Option<Cohort<'a>>,
    /// Cohort statistics of every item (S-norm only).
    stats: Vec<Option<CohortStats>>,
    /// The "same person" threshold in this scoring's scale.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub rule: String,
}

impl<'a> Scoring<'a> {
    /// Scoring of fold `f`. With S-norm the cohort is the fold's training images; training
    /// and validation faces are measured against the other people's images only, as a
    /// test face (of a person outside the cohort) is.
    pub fn new(f: &'a FoldEmbeddings, sim: Similarity, norm: ScoreNorm, top: usize) -> Self {
        let train = f.with_role(Role::Train);
        if norm == ScoreNorm::None || train.is_empty() {
            return Self {
                f,
                sim,
                cohort: None,
                stats: vec![None; f.items.len()],
                threshold: f.threshold,
                rule: f.threshold_rule.clone(),
            };
        }
        let cohort = Cohort::new(
            train
                .iter()
                .map(|&i| (f.items[i].person.as_str(), f.vector(i))),
            f.dim,
            top,
            sim,
        );
        let stats = (0..f.items.len())
            .map(|i| {
                let item = &f.items[i];
                let exclude = (item.role != Role::Test).then_some(item.person.as_str());
                Some(cohort.stats(f.vector(i), exclude))
            })
            .collect();
        let mut scoring = Self {
            f,
            sim,
            cohort: Some(cohort),
            stats,
            threshold: f.threshold,
            rule: f.threshold_rule.clone(),
        };
        if let Some(t) = scoring.threshold_of(Role::Valid, None) {
            scoring.threshold = t;
            scoring.rule = "equal error rate on validation pairs (S-norm scale)".into();
        }
        scoring
    }

    /// The threshold on the pairs of this fold's test images at the equal error rate (or
    /// at `target_far`), if they form both genuine and impostor pairs.
    pub fn test_threshold(&self, target_far: Option<f64>) -> Option<f64> {
        self.threshold_of(Role::Test, target_far)
    }

    /// Re-chooses the threshold at `far` on this fold's validation pairs (kept when they do
    /// not form both genuine and impostor pairs).
    pub fn validation_threshold_at_far(&mut self, far: f64) {
        if let Some(t) = self.threshold_of(Role::Valid, Some(far)) {
            self.threshold = t;
            self.rule = format!("threshold at FAR {}% on validation pairs", far * 100.0);
        }
    }

    fn threshold_of(&self, role: Role, target_far: Option<f64>) -> Option<f64> {
        let idx = self.f.with_role(role);
        let labels: Vec<&str> = idx
            .iter()
            .map(|&i| self.f.items[i].person.as_str())
            .collect();
        let (g, i) = pair_scores(&labels, |a, b| self.items(idx[a], idx[b]));
        (!g.is_empty() && !i.is_empty()).then(|| match target_far {
            Some(far) => threshold_at_far(&roc(&g, &i), far),
            None => verification(&g, &i).eer_threshold,
        })
    }

    /// The normalisation this scoring applies.
    pub fn norm(&self) -> ScoreNorm {
        match self.cohort {
            Some(_) => ScoreNorm::SNorm,
            None => ScoreNorm::None,
        }
    }

    /// Score of items `a` and `b`.
    pub fn items(&self, a: usize, b: usize) -> f64 {
        let raw = self.sim.score(self.f.vector(a), self.f.vector(b));
        match (self.stats[a], self.stats[b]) {
            (Some(sa), Some(sb)) => s_norm(raw, sa, sb),
            _ => raw,
        }
    }

    /// Cohort statistics of an enrolment template (S-norm only).
    pub fn stats_of(&self, template: &[f32]) -> Option<CohortStats> {
        self.cohort.as_ref().map(|c| c.stats(template, None))
    }

    /// Score of item `q` against a template with statistics `stats`.
    pub fn with_template(&self, q: usize, template: &[f32], stats: Option<CohortStats>) -> f64 {
        let raw = self.sim.score(self.f.vector(q), template);
        match (self.stats[q], stats) {
            (Some(sq), Some(st)) => s_norm(raw, sq, st),
            _ => raw,
        }
    }
}

/// Mean embedding of `idx`, unit length for cosine similarity.
pub fn template(f: &FoldEmbeddings, idx: &[usize], sim: Similarity) -> Vec<f32> {
    let mut t = vec![0.0f32; f.dim];
    for &i in idx {
        t.iter_mut().zip(f.vector(i)).for_each(|(a, b)| *a += b);
    }
    let n = idx.len().max(1) as f32;
    t.iter_mut().for_each(|v| *v /= n);
    if sim == Similarity::Cosine {
        let norm = t.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        t.iter_mut().for_each(|v| *v /= norm);
    }
    t
}

fn open_set(f: &FoldEmbeddings, scoring: &Scoring<'_>, test: &[usize], enroll: usize) -> Value {
    let sim = scoring.sim;
    let mut by_person: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in test {
        by_person
            .entry(f.items[i].person.as_str())
            .or_default()
            .push(i);
    }
    // Enroll each person with at least two images from their first images.
    let mut people = Vec::new();
    for (name, imgs) in &by_person {
        if imgs.len() < 2 {
            continue;
        }
        let e = enroll.min(imgs.len() - 1);
        let t = template(f, &imgs[..e], sim);
        let stats = scoring.stats_of(&t);
        people.push((*name, (t, stats), imgs[e..].to_vec()));
    }
    let (mut queries, mut hits, mut detected, mut rejected) = (0usize, 0usize, 0usize, 0usize);
    for (pi, (_, _, qs)) in people.iter().enumerate() {
        for &q in qs {
            queries += 1;
            let scores: Vec<f64> = people
                .iter()
                .map(|(_, (t, stats), _)| scoring.with_template(q, t, *stats))
                .collect();
            let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            if best == Some(pi) {
                hits += 1;
                if scores[pi] >= scoring.threshold {
                    detected += 1;
                }
            }
            // The same query when this person is not enrolled.
            let best_other = (0..scores.len())
                .filter(|&j| j != pi)
                .map(|j| scores[j])
                .fold(f64::NEG_INFINITY, f64::max);
            if best_other < scoring.threshold {
                rejected += 1;
            }
        }
    }
    let q = queries.max(1) as f64;
    json!({
        "enrolled_people": people.len(),
        "enroll_images": enroll,
        "queries": queries,
        "identification_accuracy": hits as f64 / q,
        "detection_identification_rate": detected as f64 / q,
        "rejection_rate_not_enrolled": rejected as f64 / q,
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
mod tests {
    use super::*;
    use crate::stages::embeddings::EmbeddedItem;

    fn fold(items: &[(&str, Role, [f32; 2])]) -> FoldEmbeddings {
        FoldEmbeddings {
            fold: "f".into(),
            dim: 2,
            items: items
                .iter()
                .enumerate()
                .map(|(i, (p, r, _))| EmbeddedItem {
                    name: format!("{p}/{i}"),
                    person: p.to_string(),
                    role: *r,
                })
                .collect(),
            vectors: items.iter().flat_map(|(_, _, v)| *v).collect(),
            threshold: 0.9,
            threshold_rule: "test".into(),
            model_dir: None,
            history: Vec::new(),
            best_epoch: 0,
            stop: None,
            seconds: 0.0,
        }
    }

    fn raw(f: &FoldEmbeddings) -> Scoring<'_> {
        Scoring::new(f, Similarity::Cosine, ScoreNorm::None, 0)
    }

    #[test]
    fn closed_set_uses_the_nearest_training_image() {
        let f = fold(&[
            ("a", Role::Train, [1.0, 0.0]),
            ("b", Role::Train, [0.0, 1.0]),
            ("a", Role::Test, [0.8, 0.6]),
            ("b", Role::Test, [0.8, 0.6]),
        ]);
        let (m, g, i) = evaluate_fold(&f, &raw(&f), 1);
        // Both test images are nearest to a's training image: one of two is right.
        assert_eq!(m["closed_set_accuracy"], json!(0.5));
        assert!(g.is_empty() && i.len() == 1);
        assert!(m.get("open_set").is_none());
    }

    #[test]
    fn open_set_enrolls_first_images_and_rejects_strangers_below_the_threshold() {
        let f = fold(&[
            ("t", Role::Train, [1.0, 0.0]),
            ("a", Role::Test, [1.0, 0.0]),
            ("a", Role::Test, [0.96, 0.28]),
            ("b", Role::Test, [0.0, 1.0]),
            ("b", Role::Test, [0.6, 0.8]),
        ]);
        let (m, _, _) = evaluate_fold(&f, &raw(&f), 1);
        let o = &m["open_set"];
        assert_eq!(o["queries"], json!(2));
        // a's query (0.96, 0.28) is nearest a, b's (0.6, 0.8) nearest b.
        assert_eq!(o["identification_accuracy"], json!(1.0));
        // At threshold 0.9: a's query scores 0.96 with a -> detected; b's 0.8 -> not.
        assert_eq!(o["detection_identification_rate"], json!(0.5));
        // Without their own template: a's query vs b = 0.28, b's vs a = 0.6: both rejected.
        assert_eq!(o["rejection_rate_not_enrolled"], json!(1.0));
    }

    #[test]
    fn s_norm_scores_pairs_against_the_training_cohort() {
        let f = fold(&[
            ("t", Role::Train, [1.0, 0.0]),
            ("u", Role::Train, [0.0, 1.0]),
            ("t", Role::Valid, [0.96, 0.28]),
            ("u", Role::Valid, [0.28, 0.96]),
            ("a", Role::Test, [0.6, 0.8]),
            ("b", Role::Test, [0.8, 0.6]),
        ]);
        let s = Scoring::new(&f, Similarity::Cosine, ScoreNorm::SNorm, 0);
        // Test faces against the whole cohort {t, u}: a scores 0.6 and 0.8, b 0.8 and 0.6,
        // so both have mean 0.7 and sd 0.1; their raw score 0.96 becomes (0.96-0.7)/0.1.
        assert!((s.items(4, 5) - 2.6).abs() < 1e-5, "{}", s.items(4, 5));
        // A validation face of t leaves t out of its cohort: only u (score 0.28), a
        // one-score cohort whose sd is floored.
        let own = Cohort::new(
            [("t", f.vector(0)), ("u", f.vector(1))],
            2,
            0,
            Similarity::Cosine,
        )
        .stats(f.vector(2), Some("t"));
        assert!((own.mean - 0.28).abs() < 1e-6 && own.sd <= 1e-6, "{own:?}");
        // No genuine validation pair: the threshold stays the fold's.
        assert_eq!(s.threshold, f.threshold);
        let (m, _, _) = evaluate_fold(&f, &s, 1);
        assert_eq!(m["score_norm"], json!("s_norm"));
        assert_eq!(
            evaluate_fold(&f, &raw(&f), 1).0["score_norm"],
            json!("none")
        );
    }

    #[test]
    fn means_average_numeric_leaves() {
        let m = mean_of(&[
            json!({"a": 1.0, "o": {"x": 2}}),
            json!({"a": 3.0, "o": {"x": 4}}),
        ]);
        assert_eq!(m, json!({"a": 2.0, "o": {"x": 3.0}}));
    }

    #[test]
    fn other_folds_thresholds_never_use_the_folds_own_test_people() {
        let test_fold = |b: [f32; 2]| {
            fold(&[
                ("t", Role::Train, [1.0, 0.0]),
                ("a", Role::Test, [1.0, 0.0]),
                ("a", Role::Test, [0.8, 0.6]),
                ("b", Role::Test, b),
                ("b", Role::Test, [0.0, 1.0]),
            ])
        };
        let folds = [
            test_fold([0.0, 1.0]),
            test_fold([0.6, 0.8]),
            test_fold([0.28, 0.96]),
        ];
        let mut scorings: Vec<Scoring<'_>> = folds.iter().map(raw).collect();
        let own: Vec<f64> = scorings
            .iter()
            .map(|s| s.test_threshold(None).expect("genuine and impostor pairs"))
            .collect();
        assert!(
            own[0] != own[1],
            "the folds must differ for the test to mean anything"
        );
        thresholds_from_other_folds(&mut scorings, None).expect("three folds");
        for (k, s) in scorings.iter().enumerate() {
            let others: Vec<f64> = (0..3).filter(|&j| j != k).map(|j| own[j]).collect();
            let want = others.iter().sum::<f64>() / 2.0;
            assert!(
                (s.threshold - want).abs() < 1e-12,
                "fold {k}: {} vs {want}",
                s.threshold
            );
            assert!(s.rule.contains("other 2 folds"), "{}", s.rule);
        }
        // The fold's metrics report the threshold it was judged at and where it came from.
        let (m, _, _) = evaluate_fold(&folds[0], &scorings[0], 1);
        assert_eq!(m["threshold"], json!(scorings[0].threshold));
        assert_eq!(m["threshold_rule"], json!(scorings[0].rule));

        // At a target FAR of 0 every fold's own threshold rejects all its impostor pairs,
        // and the rule says so.
        let mut strict: Vec<Scoring<'_>> = folds.iter().map(raw).collect();
        thresholds_from_other_folds(&mut strict, Some(1e-9)).expect("three folds");
        assert!(strict[0].rule.contains("at FAR"), "{}", strict[0].rule);
        assert!(
            strict
                .iter()
                .zip(&scorings)
                .any(|(a, b)| a.threshold != b.threshold)
        );

        // One fold cannot be calibrated on the others.
        let mut single = vec![raw(&folds[0])];
        let err = thresholds_from_other_folds(&mut single, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least two folds"), "{err}");
    }

    #[test]
    fn a_target_far_is_a_rate_strictly_between_0_and_1() {
        let with = |threshold, target_far| EvaluateParams {
            threshold,
            target_far,
            ..Default::default()
        };
        for rule in [ThresholdRule::OtherFolds, ThresholdRule::Validation] {
            assert!(EvaluateFaces::check(&with(rule, Some(0.01))).is_ok());
            assert!(EvaluateFaces::check(&with(rule, None)).is_ok());
            for bad in [0.0, 1.0, f64::NAN] {
                let (name, _) = EvaluateFaces::check(&with(rule, Some(bad))).unwrap_err();
                assert_eq!(name, "target_far");
            }
        }
    }

    #[test]
    fn a_validation_threshold_at_a_far_admits_no_more_impostor_pairs_than_allowed() {
        let f = fold(&[
            ("t", Role::Train, [1.0, 0.0]),
            ("t", Role::Valid, [1.0, 0.0]),
            ("t", Role::Valid, [0.8, 0.6]),
            ("u", Role::Valid, [0.6, 0.8]),
            ("u", Role::Valid, [0.0, 1.0]),
        ]);
        // Validation pairs: genuine 0.8 (t) and 0.8 (u); impostors 0.6, 0.0, 0.96, 0.6.
        let mut s = raw(&f);
        s.validation_threshold_at_far(0.01);
        assert!(s.threshold > 0.96, "{}", s.threshold);
        assert!(
            s.rule.contains("at FAR 1% on validation pairs"),
            "{}",
            s.rule
        );
        s.validation_threshold_at_far(0.5);
        assert!(s.threshold > 0.6 && s.threshold <= 0.8, "{}", s.threshold);
    }
}
