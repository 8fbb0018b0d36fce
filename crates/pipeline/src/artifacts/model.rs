//! `model`: an exported model directory (`model.safetensors` + `manifest.json`), published
//! as the run's `model/`.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::fsutil::copy_dir;
use profundo_core::manifest::PassThroughManifest;

use crate::StageError;
use crate::registry::{Artifact, Publication};

/// An exported model.
#[derive(Debug, Clone)]
pub struct ModelArtifact {
    /// Directory holding the model files.
    pub dir: PathBuf,
    /// Its manifest (the domain section passes through; the domain's apps read it typed).
    pub manifest: PassThroughManifest,
}

impl ModelArtifact {
    /// Artifact type name.
    pub const TYPE: &'static str = "model";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let manifest = PassThroughManifest::load_any(dir)?;
        Ok(Arc::new(ModelArtifact {
            dir: dir.to_path_buf(),
            manifest,
        }))
    }
}

impl Artifact for ModelArtifact {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        Ok(copy_dir(&self.dir, dir)?)
    }
    fn summary(&self) -> String {
        format!(
            "{} model for task `{}`",
            self.manifest.domain, self.manifest.task
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn publish(
        &self,
        _stage: &str,
        cache_dir: &Path,
        run: &mut Publication,
    ) -> Result<(), StageError> {
        let dest = run.run_dir.join("model");
        profundo_core::fsutil::write_dir_atomic(&dest, |tmp| copy_dir(cache_dir, tmp))?;
        run.report.push((
            "Model".into(),
            format!(
                "`model/` holds a {} model for task `{}`; apps load it with `--model {}`.\n",
                self.manifest.domain,
                self.manifest.task,
                run.run_dir.display()
            ),
        ));
        Ok(())
    }
}
