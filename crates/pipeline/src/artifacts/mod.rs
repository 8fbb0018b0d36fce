//! The artifact types exchanged by domain-independent stages.
//!
//! | type | produced by | holds |
//! |---|---|---|
//! | `features` | feature stages (e.g. `speech.log_mel`) | fixed-shape tensors per item + labels |
//! | `split` | `split.by_group`, `split.by_pattern` | folds: which items are test items |
//! | `classifier` | `speech.train` | one trained model per fold (+ final), held-out predictions |
//! | `metrics` | `eval.classification` | metrics JSON, report section, plots |
//! | `model` | `export.model` | a model directory with `manifest.json` |

mod classifier;
mod features;
mod items;
mod metrics;
mod model;
mod split;

pub use classifier::{FoldModel, Prediction, TrainedClassifier};
pub use features::FeatureSet;
pub use items::{ItemMeta, Items};
pub use metrics::MetricsArtifact;
pub use model::ModelArtifact;
pub use split::{Fold, Split};

use crate::registry::Registry;

/// Registers the loaders of the artifact types defined here.
pub fn register(reg: &mut Registry) {
    reg.artifact(FeatureSet::TYPE, FeatureSet::load)
        .artifact(Split::TYPE, Split::load)
        .publishing_artifact(TrainedClassifier::TYPE, TrainedClassifier::load)
        .publishing_artifact(MetricsArtifact::TYPE, MetricsArtifact::load)
        .publishing_artifact(ModelArtifact::TYPE, ModelArtifact::load);
}

/// Maps an I/O error on `path` into a stage error.
pub(crate) fn io_err(path: &std::path::Path, e: std::io::Error) -> crate::StageError {
    crate::StageError::io(path, e)
}

/// Copies a model's `training.png` (if it has one) into the run's
/// `plots/<stage>-<fold>-training.png`.
pub fn publish_training_plot(
    run: &crate::registry::Publication,
    stage: &str,
    fold: &str,
    model_dir: &std::path::Path,
) -> Result<(), crate::StageError> {
    let src = model_dir.join("training.png");
    if !src.is_file() {
        return Ok(());
    }
    let plots = run.run_dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| io_err(&plots, e))?;
    let dest = plots.join(format!("{stage}-{fold}-training.png"));
    std::fs::copy(&src, &dest).map_err(|e| io_err(&src, e))?;
    Ok(())
}
