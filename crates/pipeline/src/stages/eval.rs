//! `eval.classification`: accuracy, macro-F1, top-k, confusion matrix, per-class and
//! per-group scores from held-out predictions, per fold and pooled.

use std::collections::BTreeMap;
use std::sync::Arc;

use profundo_core::metrics::{ConfusionMatrix, accuracy, mean_std, top_k_accuracy};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::fold_training::argmax;
use crate::StageError;
use crate::artifacts::{MetricsArtifact, Prediction, TrainedClassifier};
use crate::registry::{Artifact, Slot, StageContext, TypedStage, input};

/// Parameters of `eval.classification`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvalParams {
    /// Also report top-k accuracy for this k (0 = off).
    pub top_k: usize,
    /// What a group is called in the report (e.g. `speaker`).
    pub group_name: String,
}

impl Default for EvalParams {
    fn default() -> Self {
        Self {
            top_k: 3,
            group_name: "group".into(),
        }
    }
}

/// The headline of a classification evaluation, as a model manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationSummary {
    /// The split protocol evaluated.
    pub protocol: String,
    /// Accuracy pooled over every held-out item.
    pub accuracy: f64,
    /// Macro-averaged F1, pooled.
    pub macro_f1: f64,
    /// Held-out items.
    pub items: usize,
    /// Mean of the folds' accuracies.
    pub fold_accuracy_mean: f64,
    /// Their standard deviation.
    pub fold_accuracy_std: f64,
    /// Folds evaluated.
    pub folds: usize,
}

/// Evaluates held-out predictions.
pub struct EvalClassification;

struct Scores {
    accuracy: f64,
    macro_f1: f64,
    top_k: Option<f64>,
    n: usize,
}

fn score(preds: &[&Prediction], labels: &[String], k: usize) -> (Scores, ConfusionMatrix) {
    let truth: Vec<usize> = preds.iter().map(|p| p.truth).collect();
    let pred: Vec<usize> = preds.iter().map(|p| argmax(&p.probs)).collect();
    let cm = ConfusionMatrix::new(labels, &truth, &pred);
    let probs: Vec<Vec<f32>> = preds.iter().map(|p| p.probs.clone()).collect();
    (
        Scores {
            accuracy: accuracy(&truth, &pred),
            macro_f1: cm.macro_f1(),
            top_k: (k > 1 && k < labels.len()).then(|| top_k_accuracy(&truth, &probs, k)),
            n: preds.len(),
        },
        cm,
    )
}

impl TypedStage for EvalClassification {
    type Params = EvalParams;
    const KIND: &'static str = "eval.classification";
    const DOC: &'static str = "Accuracy, macro-F1, top-k, confusion matrix, per-class and per-group scores on held-out folds";
    const INPUTS: &'static [Slot] = &[Slot {
        name: "classifier",
        accepts: &[TrainedClassifier::TYPE],
        optional: false,
    }];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let c: &TrainedClassifier = input(inputs, 0)?;
        let labels = &c.labels;
        let mut folds = serde_json::Map::new();
        let mut fold_acc = Vec::new();
        let mut all: Vec<&Prediction> = Vec::new();
        let mut md = format!(
            "Protocol: {}.\n\n| fold | items | accuracy | macro-F1 |{}\n|---|---|---|---|{}\n",
            c.protocol,
            if p.top_k > 1 {
                format!(" top-{} |", p.top_k)
            } else {
                String::new()
            },
            if p.top_k > 1 { "---|" } else { "" }
        );
        for m in c.fold_models() {
            let preds: Vec<&Prediction> = m.predictions.iter().collect();
            if preds.is_empty() {
                continue;
            }
            let (s, _) = score(&preds, labels, p.top_k);
            fold_acc.push(s.accuracy);
            md.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} |{}\n",
                m.fold,
                s.n,
                s.accuracy,
                s.macro_f1,
                s.top_k.map(|t| format!(" {t:.4} |")).unwrap_or_default()
            ));
            let mut f = json!({"accuracy": s.accuracy, "macro_f1": s.macro_f1, "items": s.n});
            if let Some(t) = s.top_k {
                f[format!("top{}_accuracy", p.top_k)] = json!(t);
            }
            folds.insert(m.fold.clone(), f);
            all.extend(preds);
        }
        if all.is_empty() {
            return Err(StageError::Other(
                "no held-out predictions to evaluate (did every fold have test items?)".into(),
            ));
        }
        let (pooled, cm) = score(&all, labels, p.top_k);
        let (mean, std) = mean_std(&fold_acc);
        ctx.log(&format!(
            "pooled accuracy {:.4}, macro-F1 {:.4}; fold accuracy mean {:.4} ± {:.4} over {} fold(s)",
            pooled.accuracy, pooled.macro_f1, mean, std, fold_acc.len()
        ));
        // Per-group accuracy.
        let mut by_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for pr in &all {
            let e = by_group.entry(pr.group.as_str()).or_default();
            e.1 += 1;
            if argmax(&pr.probs) == pr.truth {
                e.0 += 1;
            }
        }
        let per_group: serde_json::Map<String, serde_json::Value> = by_group
            .iter()
            .map(|(g, (h, n))| (g.to_string(), json!(*h as f64 / *n as f64)))
            .collect();
        let per_class = cm.per_class();
        md.push_str(&format!(
            "\n**Pooled over all held-out items: accuracy {:.4}, macro-F1 {:.4}; mean fold accuracy {:.4} ± {:.4}.**\n\n| {} | accuracy |\n|---|---|\n",
            pooled.accuracy, pooled.macro_f1, mean, std, p.group_name
        ));
        for (g, (h, n)) in &by_group {
            md.push_str(&format!(
                "| {g} | {:.4} ({h}/{n}) |\n",
                *h as f64 / *n as f64
            ));
        }
        md.push_str("\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
        for s in &per_class {
            md.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.3} | {} |\n",
                s.label, s.precision, s.recall, s.f1, s.support
            ));
        }
        let plot_dir = ctx.work_dir.join("plots");
        std::fs::create_dir_all(&plot_dir).map_err(|e| crate::artifacts::io_err(&plot_dir, e))?;
        profundo_core::plots::confusion_matrix(
            &plot_dir.join("confusion.png"),
            &format!("{} — confusion (pooled)", ctx.stage),
            &cm,
        )?;
        md.push_str(&format!(
            "\n![confusion matrix](plots/{}-confusion.png)\n",
            ctx.stage
        ));
        let mut metrics = json!({
            "protocol": c.protocol,
            "accuracy": pooled.accuracy,
            "macro_f1": pooled.macro_f1,
            "items": pooled.n,
            "fold_accuracy_mean": mean,
            "fold_accuracy_std": std,
            "folds": folds,
            "per_group": per_group,
            "per_class": per_class.iter().map(|s| (s.label.clone(), json!({"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}))).collect::<serde_json::Map<_, _>>(),
            "confusion": {"labels": cm.labels, "counts": cm.counts},
        });
        if let Some(t) = pooled.top_k {
            metrics[format!("top{}_accuracy", p.top_k)] = json!(t);
        }
        let summary = ClassificationSummary {
            protocol: c.protocol.clone(),
            accuracy: pooled.accuracy,
            macro_f1: pooled.macro_f1,
            items: pooled.n,
            fold_accuracy_mean: mean,
            fold_accuracy_std: std,
            folds: fold_acc.len(),
        };
        Ok(Arc::new(MetricsArtifact {
            metrics,
            summary: Some(MetricsArtifact::summary_of(&summary)?),
            domain: None,
            thresholds: Default::default(),
            report: md,
            plots: vec!["confusion.png".into()],
            root: plot_dir,
        }))
    }
}
