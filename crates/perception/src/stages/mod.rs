//! The perception stage kinds: `perception.load_signs` (a sign dataset to fixed-size
//! inputs), `perception.train` ([`crate::train`]) and `perception.corruptions`
//! ([`robustness`]: accuracy under the corruption suite).

pub mod robustness;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_pipeline::artifacts::{FeatureSet, Items};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage};
use profundo_pipeline::{ParamError, StageError};
use serde::{Deserialize, Serialize};

use crate::gtsrb::{LoadOptions, load};

/// The stage kind name, also the `kind` tag of the input settings carried to the model.
pub const LOAD_KIND: &str = "perception.load_signs";

/// How an image becomes the network's input; stored in the model manifest so that the
/// apps prepare images as training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignInputs {
    /// The stage kind that wrote the settings.
    pub kind: String,
    /// Side of the square input in pixels (RGB, values in `[0, 1]`; the network
    /// normalises contrast itself).
    pub size: u32,
}

/// Parameters of `perception.load_signs`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSignsParams {
    /// The dataset: a folder holding the GTSRB archives (or their unpacked official
    /// layout, or class folders), or one zip archive.
    pub path: PathBuf,
    /// Side of the square input in pixels.
    #[serde(default = "default_size")]
    pub size: u32,
    /// Keep this many evenly spaced frames of each training track (default: all 30).
    #[serde(default)]
    pub frames_per_track: Option<usize>,
    /// Keep every n-th test image (default 1: all).
    #[serde(default = "one")]
    pub test_every: usize,
}

fn default_size() -> u32 {
    32
}

fn one() -> usize {
    1
}

/// Reads a sign dataset.
pub struct LoadSigns;

impl TypedStage for LoadSigns {
    type Params = LoadSignsParams;
    const KIND: &'static str = LOAD_KIND;
    const DOC: &'static str = "Read traffic signs (GTSRB official layout, zipped or not, or class folders) into RGB inputs, cropped to their ROI";
    const INPUTS: &'static [Slot] = &[];
    const OUTPUT: &'static str = FeatureSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if !(8..=256).contains(&p.size) {
            return Err(ParamError::new("size", p.size, "must be in 8..=256 pixels"));
        }
        if p.frames_per_track == Some(0) {
            return Err(ParamError::new("frames_per_track", 0, "must be at least 1"));
        }
        if p.test_every == 0 {
            return Err(ParamError::new("test_every", 0, "must be at least 1"));
        }
        Ok(())
    }

    fn reads(p: &Self::Params, pipeline_dir: &Path) -> Vec<PathBuf> {
        vec![profundo_pipeline::registry::data_path(
            &p.path,
            pipeline_dir,
        )]
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        _inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let path = ctx.resolve(&p.path);
        let signs = load(
            &path,
            &LoadOptions {
                size: p.size,
                frames_per_track: p.frames_per_track,
                test_every: p.test_every,
            },
        )?;
        let side = p.size as usize;
        let mut data = Vec::with_capacity(signs.len() * 3 * side * side);
        let mut metas = Vec::with_capacity(signs.len());
        for s in signs {
            data.extend_from_slice(&s.pixels);
            metas.push(s.meta);
        }
        let items = Items::new(metas);
        let tests = items.items.iter().filter(|i| i.group == "test").count();
        ctx.log(&format!(
            "{} images ({} training in {} tracks, {tests} test), {} classes, from {}",
            items.items.len(),
            items.items.len() - tests,
            items.groups().len().saturating_sub(usize::from(tests > 0)),
            items.labels.len(),
            path.display()
        ));
        let settings = SignInputs {
            kind: LOAD_KIND.into(),
            size: p.size,
        };
        Ok(Arc::new(FeatureSet {
            fingerprint: items.fingerprint(),
            items,
            shape: [3, side, side],
            data,
            extractor: serde_json::to_string(&settings)
                .map_err(|e| StageError::Other(e.to_string()))?,
        }))
    }
}

/// Registers the perception stage kinds.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    reg.stage::<LoadSigns>()
        .stage::<crate::train::TrainSigns>()
        .stage::<robustness::Corruptions>();
}
