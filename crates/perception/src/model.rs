//! The sign classifier: per-image contrast normalisation, stages of 3x3 convolutions with
//! batch norm and ReLU each followed by 2x2 max pooling, and a linear head on the
//! flattened last feature map (keeping where things are: an arrow to the left is not one
//! to the right). With `multi_scale`, earlier stages' maps, max-pooled down to the last
//! stage's size, join the head's input too (Sermanet & LeCun 2011).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};
use profundo_core::model::Classifier;
use profundo_core::{activation, block, conv, norm, pool};
use serde::{Deserialize, Serialize};

use crate::{PerceptionError, Result};

/// Hyper-parameters of [`SignNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SignNetConfig {
    /// Output channels of each stage; each stage halves height and width.
    pub channels: Vec<usize>,
    /// 3x3 convolutions per stage.
    pub convs_per_stage: usize,
    /// Dropout probability before the head.
    pub dropout: f64,
    /// Feed every stage's map (pooled to the last stage's size) to the head, not only the
    /// last one's.
    pub multi_scale: bool,
}

impl Default for SignNetConfig {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128],
            convs_per_stage: 2,
            dropout: 0.3,
            multi_scale: false,
        }
    }
}

impl SignNetConfig {
    /// Checks the settings against an input of `size x size` pixels.
    pub fn check(&self, size: usize) -> Result<()> {
        self.check_layers()?;
        let shrink = 1usize << self.channels.len();
        if size < shrink || !size.is_multiple_of(shrink) {
            return Err(PerceptionError::Config(format!(
                "{} stages halve the input {} times: its side ({size}) must be a multiple of {shrink}",
                self.channels.len(),
                self.channels.len()
            )));
        }
        Ok(())
    }

    /// Checks the settings that do not depend on the input size.
    pub fn check_layers(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(PerceptionError::Config(
                "model.channels needs at least one stage, each with channels > 0".into(),
            ));
        }
        if self.convs_per_stage == 0 {
            return Err(PerceptionError::Config(
                "model.convs_per_stage must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PerceptionError::Config(format!(
                "model.dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// Side of the last stage's map for an input of `size` pixels.
    fn last_side(&self, size: usize) -> usize {
        size >> self.channels.len()
    }

    /// Forward FLOPs for one `[3, size, size]` input (multiply-adds count two).
    pub fn forward_flops(&self, size: usize, classes: usize) -> usize {
        let (mut prev, mut side, mut total) = (3, size, 0);
        for &ch in &self.channels {
            for k in 0..self.convs_per_stage {
                let cin = if k == 0 { prev } else { ch };
                total += 2 * side * side * ch * cin * 9;
            }
            prev = ch;
            side /= 2;
        }
        total + 2 * self.head_inputs(size) * classes
    }

    fn head_inputs(&self, size: usize) -> usize {
        let s = self.last_side(size);
        let maps: usize = if self.multi_scale {
            self.channels.iter().sum()
        } else {
            *self.channels.last().unwrap_or(&0)
        };
        maps * s * s
    }

    /// Builds the network for `[3, size, size]` inputs and `classes` outputs.
    pub fn init(&self, size: usize, classes: usize, device: &Device) -> SignNet {
        let mut convs = Vec::new();
        let mut prev = 3;
        for &ch in &self.channels {
            let mut stage = Vec::new();
            for k in 0..self.convs_per_stage {
                let cin = if k == 0 { prev } else { ch };
                stage.push(ConvUnit {
                    conv: Conv2dConfig::new([cin, ch], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .with_bias(false)
                        .init(device),
                    norm: BatchNormConfig::new(ch).init(device),
                });
            }
            convs.push(stage);
            prev = ch;
        }
        let last = self.last_side(size);
        SignNet {
            stages: convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.head_inputs(size), classes).init(device),
            multi_scale: self.multi_scale,
            last_side: last,
        }
    }
}

/// A 3x3 convolution (no bias), batch norm and ReLU.
#[derive(Module, Debug)]
pub struct ConvUnit {
    conv: Conv2d,
    norm: BatchNorm,
}

impl ConvUnit {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if conv::has_own_path(&x.device()) {
            block::conv_norm_relu(&self.conv, &self.norm, x, true)
        } else {
            activation::relu(norm::batch_norm(&self.norm, self.conv.forward(x)))
        }
    }
}

/// The sign classifier: `[batch, 3, size, size]` RGB in `[0, 1]` to `[batch, classes]`
/// logits.
#[derive(Module, Debug)]
pub struct SignNet {
    stages: Vec<Vec<ConvUnit>>,
    pool: MaxPool2d,
    dropout: Dropout,
    head: Linear,
    multi_scale: bool,
    last_side: usize,
}

/// Per-image contrast normalisation: zero mean and unit variance over all pixels and
/// channels, so a dim, foggy or washed-out sign reaches the first layer at full contrast.
pub fn normalize_contrast(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let flat: Tensor<2> = x.reshape([b, c * h * w]);
    let (var, mean) = flat.clone().var_mean_bias(1);
    let y = (flat - mean) / (var + 1e-4).sqrt();
    y.reshape([b, c, h, w])
}

impl SignNet {
    /// Class logits for a batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = normalize_contrast(x);
        let mut taps: Vec<Tensor<4>> = Vec::new();
        for stage in &self.stages {
            for unit in stage {
                x = unit.forward(x);
            }
            x = pool::max_pool2d(&self.pool, x);
            if self.multi_scale {
                taps.push(x.clone());
            }
        }
        let b = x.dims()[0];
        let features: Tensor<2> = if self.multi_scale {
            let s = self.last_side;
            let flat: Vec<Tensor<2>> = taps
                .into_iter()
                .map(|t| {
                    let [_, c, h, _] = t.dims();
                    let k = h / s;
                    let t = if k > 1 {
                        pool::max_pool2d(
                            &MaxPool2dConfig::new([k, k]).with_strides([k, k]).init(),
                            t,
                        )
                    } else {
                        t
                    };
                    t.reshape([b, c * s * s])
                })
                .collect();
            Tensor::cat(flat, 1)
        } else {
            let [_, c, h, w] = x.dims();
            x.reshape([b, c * h * w])
        };
        self.head.forward(self.dropout.forward(features))
    }
}

impl Classifier for SignNet {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn any_stage_count_gives_one_logit_per_class_and_contrast_does_not_matter() {
        let device =
            profundo_core::backend::device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
        for multi_scale in [false, true] {
            let cfg = SignNetConfig {
                channels: vec![4, 8, 8],
                multi_scale,
                ..Default::default()
            };
            cfg.check(16).unwrap();
            let net = cfg.init(16, 5, &device);
            let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &device);
            let a: Vec<f32> = net.forward(x.clone()).into_data().try_to_vec().unwrap();
            assert_eq!(a.len(), 10);
            // A darker, flatter copy of the image gives the same logits.
            let b: Vec<f32> = net.forward(x * 0.5 + 0.1).into_data().try_to_vec().unwrap();
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 0.02 * p.abs().max(1.0), "{p} vs {q}");
            }
            let other = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &device);
            let c: Vec<f32> = net.forward(other).into_data().try_to_vec().unwrap();
            assert!(a.iter().zip(&c).any(|(p, q)| (p - q).abs() > 1e-3));
        }
        let e = SignNetConfig::default().check(20).unwrap_err().to_string();
        assert!(e.contains("multiple of 8"), "{e}");
    }
}
