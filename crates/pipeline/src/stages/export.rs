//! `export.model`: picks one trained model (the `final` one by default), records the
//! evaluation metrics in its manifest and publishes it as the run's `model/`.

use std::sync::Arc;

use profundo_core::fsutil::{copy_dir, write_json_atomic};
use profundo_core::manifest::{MANIFEST_FILE, Manifest};
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::artifacts::{MetricsArtifact, ModelArtifact};
use crate::registry::{Artifact, Slot, StageContext, TypedStage, downcast, input_artifact};

/// Parameters of `export.model`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExportParams {
    /// Which model to export: a fold name, or `final` (default: `final` if trained, else
    /// the only fold).
    pub fold: Option<String>,
}

/// Exports a model directory.
pub struct ExportModel;

impl TypedStage for ExportModel {
    type Params = ExportParams;
    const KIND: &'static str = "export.model";
    const DOC: &'static str =
        "Export one trained model (+ evaluation metrics in its manifest) as the run's model/";
    const INPUTS: &'static [Slot] = &[
        Slot {
            name: "trained",
            // Any artifact holding trained models (`classifier`, a domain's own types).
            accepts: &["*"],
            optional: false,
        },
        Slot {
            name: "metrics",
            accepts: &[MetricsArtifact::TYPE],
            optional: true,
        },
    ];
    const OUTPUT: &'static str = ModelArtifact::TYPE;

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let trained = input_artifact(inputs, 0)?;
        let models = trained.exportable_models();
        if models.is_empty() {
            return Err(StageError::Other(format!(
                "the input is a `{}` artifact, which holds no trained model to export",
                trained.type_name()
            )));
        }
        let names: Vec<&str> = models.iter().map(|(f, _)| f.as_str()).collect();
        let wanted = match &p.fold {
            Some(f) => f.clone(),
            None if names.contains(&"final") => "final".into(),
            None if names.len() == 1 => names[0].to_string(),
            None => {
                return Err(StageError::Other(format!(
                    "several models ({}); choose one with `fold = \"...\"` or train a final model",
                    names.join(", ")
                )));
            }
        };
        let (_, path) = models.iter().find(|(f, _)| *f == wanted).ok_or_else(|| {
            StageError::Other(format!(
                "no model for fold `{wanted}` (models: {})",
                names.join(", ")
            ))
        })?;
        let dir = ctx.work_dir.join("model");
        copy_dir(path, &dir)?;
        let mut manifest = Manifest::load(&dir)?;
        if let Some(Some(metrics)) = inputs.get(1) {
            let metrics: &MetricsArtifact = downcast(metrics)?;
            manifest.metrics = metrics.metrics.clone();
            if let Some(o) = manifest.metrics.as_object_mut() {
                // Keep the manifest small: the confusion matrix and per-item detail stay in the run.
                o.remove("confusion");
                // An evaluation may re-calibrate a fold's decision rule (e.g. a threshold
                // chosen on people unseen in training): `decision.<fold>` overrides those
                // fields of the exported model's `decision`.
                if let Some(serde_json::Value::Object(update)) = o
                    .remove("decision")
                    .and_then(|mut d| d.get_mut(&wanted).map(serde_json::Value::take))
                    && let serde_json::Value::Object(decision) = &mut manifest.decision
                {
                    for (k, v) in update {
                        decision.insert(k, v);
                    }
                    // Name the fields, not their values: a whitening holds thousands.
                    let fields: Vec<&str> = decision.keys().map(String::as_str).collect();
                    ctx.log(&format!(
                        "decision rule of `{wanted}` re-calibrated by the evaluation: threshold {}, fields {}",
                        decision.get("threshold").unwrap_or(&serde_json::Value::Null),
                        fields.join(", ")
                    ));
                }
            }
        }
        write_json_atomic(&dir.join(MANIFEST_FILE), &manifest)?;
        ctx.log(&format!("exported the `{wanted}` model"));
        Ok(Arc::new(ModelArtifact { dir, manifest }))
    }
}
