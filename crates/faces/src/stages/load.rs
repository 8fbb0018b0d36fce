//! `faces.load_images`: reads `<root>/<person>/<image>` folders into fixed-size inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_pipeline::ParamError;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, ItemMeta, Items};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::detect::{Detector, DetectorConfig};
use crate::folders::scan;
use crate::photo::aligned_inputs;
use crate::preprocess::{Fit, Normalize, Preprocess, decode_image};

/// Parameters of `faces.load_images`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadImagesParams {
    /// Folder with one sub-folder of images per person.
    pub path: PathBuf,
    /// Input height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Input width in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// `center_crop` (keep the aspect ratio) or `stretch`.
    #[serde(default)]
    pub fit: Fit,
    /// `standardize` (zero mean, unit variance per image), `tan_triggs` (photometric
    /// normalisation against lighting, then standardised) or `unit` ([0, 1]).
    #[serde(default)]
    pub normalize: Normalize,
    /// Detect the face in each image (MTCNN; the largest when there are several) and align
    /// it onto the ORL framing before preprocessing, as the apps do with photos: training
    /// and evaluation can start from uncropped photos. An image without a face is an error
    /// naming it.
    #[serde(default)]
    pub detect: bool,
}

fn default_height() -> u32 {
    Preprocess::default().height
}
fn default_width() -> u32 {
    Preprocess::default().width
}

impl LoadImagesParams {
    /// The preprocessing these parameters describe.
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            height: self.height,
            width: self.width,
            fit: self.fit,
            normalize: self.normalize,
        }
    }
}

/// The stage kind name, also the `kind` tag of the preprocessing stored in manifests.
pub const KIND: &str = "faces.load_images";

/// Loads a face folder.
pub struct LoadImages;

impl TypedStage for LoadImages {
    type Params = LoadImagesParams;
    const KIND: &'static str = KIND;
    const DOC: &'static str = "Read <root>/<person>/<image> face folders (PGM/PNG/JPEG/GIF/BMP) into fixed-size grey inputs";
    const INPUTS: &'static [Slot] = &[];
    const OUTPUT: &'static str = FeatureSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.preprocess()
            .check()
            .map_err(|e| ParamError::rule("height", e.to_string()))
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
        let root = ctx.resolve(&p.path);
        let pre = p.preprocess();
        let people = scan(&root)?;
        let files: Vec<(String, usize, PathBuf)> = people
            .iter()
            .flat_map(|person| {
                person
                    .images
                    .iter()
                    .enumerate()
                    .map(|(i, path)| (person.name.clone(), i + 1, path.clone()))
            })
            .collect();
        let detector = p
            .detect
            .then(|| Detector::on_cpu(DetectorConfig::default()))
            .transpose()?;
        let loaded: Vec<(Vec<f32>, blake3::Hash)> = files
            .par_iter()
            .map(|(_, _, path)| {
                let bytes = std::fs::read(path)
                    .map_err(|e| StageError::data(path, format!("cannot read: {e}")))?;
                let pixels = match &detector {
                    None => pre.decode(&bytes, path)?,
                    Some(d) => aligned_input(d, &pre, &bytes, path)?,
                };
                Ok((pixels, blake3::hash(&bytes)))
            })
            .collect::<Result<_, StageError>>()?;
        let mut items = Vec::with_capacity(files.len());
        let mut data = Vec::with_capacity(files.len() * (p.height * p.width) as usize);
        let mut h = blake3::Hasher::new();
        for ((person, index, path), (pixels, digest)) in files.iter().zip(loaded) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = format!("{person}/{stem}");
            h.update(name.as_bytes());
            h.update(digest.as_bytes());
            items.push(ItemMeta {
                name,
                source: None,
                label: person.clone(),
                group: person.clone(),
                fields: BTreeMap::from([("index".to_string(), index.to_string())]),
                path: path.display().to_string(),
                view: None,
            });
            data.extend(pixels);
        }
        ctx.log(&format!(
            "{} images of {} people from {} ({}x{} input{})",
            items.len(),
            people.len(),
            root.display(),
            p.height,
            p.width,
            if p.detect {
                ", faces detected and aligned"
            } else {
                ""
            }
        ));
        let mut extractor =
            serde_json::to_value(&pre).map_err(|e| StageError::Other(e.to_string()))?;
        if let Some(o) = extractor.as_object_mut() {
            o.insert("kind".into(), KIND.into());
        }
        Ok(Arc::new(FeatureSet {
            items: Items::new(items),
            shape: pre.shape(),
            data,
            extractor: extractor.to_string(),
            fingerprint: h.finalize().to_hex()[..16].to_string(),
        }))
    }
}

/// The network input of the largest face in an image file's bytes, aligned onto the ORL
/// framing (what the apps feed the network for a photo).
fn aligned_input(
    detector: &Detector,
    pre: &Preprocess,
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<f32>, StageError> {
    let img = decode_image(bytes, path)?;
    let largest = aligned_inputs(detector, pre, &img, path)?
        .into_iter()
        .next();
    let (_, input) = largest.ok_or_else(|| {
        StageError::data(
            path,
            "no face found (set `detect = false` for folders of face crops the detector misses)",
        )
    })?;
    Ok(input)
}
