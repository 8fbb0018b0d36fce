//! Face detection with five landmarks: MTCNN (Zhang et al., IEEE SPL 2016) in Burn, with
//! the pretrained weights facenet-pytorch ships (MIT), compiled into the binary.
//!
//! - [`nets`]: P-Net, R-Net, O-Net as Burn modules; [`weights`]: loading the shipped files.
//! - [`cascade`]: pyramid, proposals, suppression, refinement, landmarks.
//! - [`planes`]: images as RGB planes, area resampling.
//! - [`imglab`]: dlib's imglab XML annotations.
//! - [`metrics`]: IoU, precision, recall, average precision against annotated boxes.
//! - [`reference`]: the parity fixture of the reference implementation (facenet-pytorch).
//!
//! [`Detector::detect`] gives every face of a photo, in pixels of that photo, largest first.

pub(crate) mod cascade;
pub mod imglab;
pub mod metrics;
pub mod nets;
pub mod planes;
pub mod reference;
pub mod weights;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{FacesError, Result};
use cascade::Cascade;
use nets::{ONet, PNet, RNet};
pub use planes::Planes;

/// A face found in a photo, in pixels of that photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Box `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The detector's face probability (O-Net's).
    pub score: f32,
    /// `[x, y]` of the left eye, right eye, nose tip, left and right mouth corners ("left"
    /// as seen in the photo).
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// Box width.
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    /// Box height.
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }

    /// Box area.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
}

/// The detector's settings (facenet-pytorch's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// The smallest face searched for, in pixels (the pyramid's first scale maps it onto
    /// P-Net's 12x12 window).
    pub min_face_size: f64,
    /// Face-probability thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Scale step between pyramid levels.
    pub scale_factor: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            scale_factor: 0.709,
        }
    }
}

impl DetectorConfig {
    /// Checks the settings, naming the one at fault.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(FacesError::Config(format!("face detector: {what}")));
        if !(4.0..=4096.0).contains(&self.min_face_size) {
            return bad(format!(
                "min_face_size = {} must be between 4 and 4096 pixels",
                self.min_face_size
            ));
        }
        if let Some(t) = self.thresholds.iter().find(|t| !(0.0..1.0).contains(*t)) {
            return bad(format!(
                "thresholds {:?}: {t} is not in [0, 1)",
                self.thresholds
            ));
        }
        if !(0.1..=0.95).contains(&self.scale_factor) {
            return bad(format!(
                "scale_factor = {} must be between 0.1 and 0.95",
                self.scale_factor
            ));
        }
        Ok(())
    }
}

/// MTCNN with the shipped weights.
pub struct Detector {
    pnet: PNet,
    rnet: RNet,
    onet: ONet,
    config: DetectorConfig,
    device: Device,
}

impl Detector {
    /// Loads the shipped networks onto `device` with `config`.
    pub fn load(config: DetectorConfig, device: &Device) -> Result<Self> {
        config.check()?;
        let (pnet, rnet, onet) = weights::load(device)?;
        Ok(Self {
            pnet,
            rnet,
            onet,
            config,
            device: device.clone(),
        })
    }

    /// [`Self::load`] onto the CPU's pure-Rust backend (flex), where the apps and
    /// `faces.load_images` detect.
    pub fn on_cpu(config: DetectorConfig) -> Result<Self> {
        Self::load(config, &Device::flex())
    }

    /// The settings.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Every face in `img`, largest box first.
    pub fn detect(&self, img: &Planes) -> Vec<Face> {
        Cascade {
            pnet: &self.pnet,
            rnet: &self.rnet,
            onet: &self.onet,
            min_face: self.config.min_face_size,
            factor: self.config.scale_factor,
            thresholds: self.config.thresholds,
            device: &self.device,
        }
        .run(img)
    }

    /// Every face in a decoded image.
    pub fn detect_image(&self, img: &image::DynamicImage) -> Vec<Face> {
        self.detect(&Planes::from_image(img))
    }
}
