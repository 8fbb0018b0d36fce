//! `features`: one fixed-shape tensor per item, with labels and the extractor's settings.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Items, io_err};
use crate::StageError;
use crate::registry::Artifact;

/// Fixed-shape features for every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// Item metadata and label names.
    pub items: Items,
    /// Shape of one item, `[channels, rows, cols]`.
    pub shape: [usize; 3],
    /// All values, item after item.
    pub data: Vec<f32>,
    /// The extractor's settings as JSON text, with a `kind` field naming the stage kind.
    /// A pass-through edge: this generic artifact carries a domain's settings without
    /// knowing their type (and postcard, the cache format, cannot hold a `serde_json::Value`);
    /// the domain's training stage reads them typed with [`FeatureSet::settings`] and stores
    /// them in the model manifest so apps compute identical features.
    pub extractor: String,
    /// blake3 fingerprint of the source data.
    pub fingerprint: String,
}

const FILE: &str = "features.postcard";

impl FeatureSet {
    /// Artifact type name.
    pub const TYPE: &'static str = "features";

    /// Values of item `i`.
    pub fn item(&self, i: usize) -> &[f32] {
        let n: usize = self.shape.iter().product();
        &self.data[i * n..(i + 1) * n]
    }

    /// The extractor's settings as the domain's type `T`; an error names the stage kind
    /// that wrote them and what does not fit.
    pub fn settings<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, StageError> {
        serde_json::from_str(&self.extractor).map_err(|e| {
            let kind = serde_json::from_str::<serde_json::Value>(&self.extractor)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
                .unwrap_or_else(|| "an unknown stage".into());
            StageError::Other(format!(
                "the `features` input (from {kind}) does not hold {what}: {e}"
            ))
        })
    }

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let fs: FeatureSet = postcard::from_bytes(&bytes)
            .map_err(|e| StageError::data(&path, format!("corrupt cached features: {e}")))?;
        Ok(Arc::new(fs))
    }
}

impl Artifact for FeatureSet {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        let bytes = postcard::to_allocvec(self).map_err(|e| StageError::Other(e.to_string()))?;
        let path = dir.join(FILE);
        std::fs::write(&path, bytes).map_err(|e| io_err(&path, e))
    }
    fn summary(&self) -> String {
        format!(
            "{} items x {:?}, {} labels",
            self.items.items.len(),
            self.shape,
            self.items.labels.len()
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn items(&self) -> Option<&Items> {
        Some(&self.items)
    }
}
