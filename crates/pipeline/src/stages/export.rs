//! `export.model`: picks one trained model (the `final` one by default), records the
//! evaluation metrics in its manifest and publishes it as the run's `model/`.

use std::sync::Arc;

use profundo_core::fsutil::copy_dir;
use profundo_core::manifest::PassThroughManifest;
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
        // The domain section passes through untouched; the domain's reader checks it.
        let mut manifest = PassThroughManifest::load_any(&dir)?;
        if let Some(Some(metrics)) = inputs.get(1) {
            let metrics: &MetricsArtifact = downcast(metrics)?;
            if let Some(domain) = metrics.domain
                && domain != manifest.domain
            {
                return Err(StageError::Other(format!(
                    "the metrics come from a {domain} evaluation, but the model is a {} model",
                    manifest.domain
                )));
            }
            manifest.metrics = metrics.summary.clone();
            // An evaluation may re-calibrate a fold's decision threshold (e.g. on people
            // unseen in training): the exported model carries its fold's.
            if let Some(t) = metrics.thresholds.get(&wanted) {
                if manifest.threshold.is_none() {
                    return Err(StageError::Other(format!(
                        "the evaluation re-chose a threshold for `{wanted}`, but the model \
                         decides by none"
                    )));
                }
                ctx.log(&format!(
                    "threshold of `{wanted}` re-calibrated by the evaluation: {:.4} ({})",
                    t.value, t.rule
                ));
                manifest.threshold = Some(t.clone());
            }
        }
        manifest.save(&dir)?;
        ctx.log(&format!("exported the `{wanted}` model"));
        Ok(Arc::new(ModelArtifact { dir, manifest }))
    }
}
