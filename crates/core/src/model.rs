//! A small convolutional classifier over `[channels, height, width]` inputs
//! (spectrograms, images): conv blocks with batch norm, global average pooling, a linear head.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Hyper-parameters of [`ConvClassifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConvClassifierConfig {
    /// Output channels of each conv block; every block but the last halves height and width.
    pub channels: Vec<usize>,
    /// Square kernel size of every convolution.
    pub kernel: usize,
    /// Dropout probability before the linear head.
    pub dropout: f64,
    /// Treat each input row as a channel and convolve along the columns only: a 1-D
    /// temporal CNN (e.g. MFCC coefficients as channels over frames). Pooling halves the
    /// columns only.
    pub temporal: bool,
}

impl Default for ConvClassifierConfig {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 64, 64],
            kernel: 3,
            dropout: 0.3,
            temporal: false,
        }
    }
}

impl ConvClassifierConfig {
    /// Checks the settings before any work is done.
    pub fn check(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(CoreError::InvalidConfig {
                name: "channels",
                message: "needs at least one block, each with channels > 0".into(),
            });
        }
        if self.kernel == 0 || self.kernel.is_multiple_of(2) {
            return Err(CoreError::InvalidConfig {
                name: "kernel",
                message: format!("must be odd and positive, got {}", self.kernel),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CoreError::InvalidConfig {
                name: "dropout",
                message: format!("must be in [0, 1), got {}", self.dropout),
            });
        }
        Ok(())
    }

    /// Builds the network for inputs of `[channels, rows, cols]` and `classes` outputs.
    pub fn init(&self, input_shape: [usize; 3], classes: usize, device: &Device) -> ConvClassifier {
        let mut blocks = Vec::with_capacity(self.channels.len());
        let [channels, rows, _] = input_shape;
        let mut prev = if self.temporal {
            channels * rows
        } else {
            channels
        };
        let pad = self.kernel / 2;
        let (kernel, padding, pool) = if self.temporal {
            (
                [1, self.kernel],
                PaddingConfig2d::Explicit(0, pad, 0, pad),
                [1, 2],
            )
        } else {
            (
                [self.kernel, self.kernel],
                PaddingConfig2d::Explicit(pad, pad, pad, pad),
                [2, 2],
            )
        };
        for (i, &ch) in self.channels.iter().enumerate() {
            let last = i + 1 == self.channels.len();
            blocks.push(ConvBlock {
                conv: Conv2dConfig::new([prev, ch], kernel)
                    .with_padding(padding.clone())
                    .with_bias(false)
                    .init(device),
                norm: BatchNormConfig::new(ch).init(device),
                pool: (!last).then(|| MaxPool2dConfig::new(pool).with_strides(pool).init()),
            });
            prev = ch;
        }
        ConvClassifier {
            blocks,
            global_pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(prev, classes).init(device),
            temporal: self.temporal,
        }
    }
}

/// Convolution, batch norm, ReLU and an optional 2x2 max pool.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
    pool: Option<MaxPool2d>,
}

impl ConvBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Every block `init` builds has stride 1, no bias and padding k / 2, which is what
        // `temporal_conv` assumes; a `[1, k]` kernel over a height-1 input can take it.
        let [_, _, kh, _] = self.conv.weight.dims();
        let y = if x.dims()[2] == 1 && kh == 1 {
            temporal_conv(x, self.conv.weight.val())
        } else {
            self.conv.forward(x)
        };
        let x = relu(self.norm.forward(y));
        match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        }
    }
}

/// A `[1, k]` convolution of `[batch, channels, 1, width]` inputs (stride 1, zero padding
/// `k / 2` on both sides, no bias: the temporal blocks' settings) as one matrix product:
/// the `k` shifted copies of the padded input form each position's patch, and the weight
/// `[out, channels, 1, k]` is read as a `[out, channels * k]` matrix.
///
/// The result equals `Conv2d::forward`. Training is why it exists: Burn 0.22 computes a
/// convolution's gradients with its default decomposition on both flex and tch (the weight
/// gradient as a convolution with batch and channel axes swapped), while a matrix product's
/// backward is two more matrix products.
pub fn temporal_conv(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let [b, c, _, w] = x.dims();
    let [out, _, _, k] = weight.dims();
    let pad = k / 2;
    let w_out = w + 2 * pad + 1 - k;
    let x: Tensor<3> = x.reshape([b, c, w]);
    let device = x.device();
    let padded = if pad > 0 {
        let zeros = || Tensor::<3>::zeros([b, c, pad], &device);
        Tensor::cat(vec![zeros(), x, zeros()], 2)
    } else {
        x
    };
    let shifted: Vec<Tensor<3>> = (0..k).map(|j| padded.clone().narrow(2, j, w_out)).collect();
    // [b, c, k, w_out] -> [b * w_out, c * k]
    let patches: Tensor<4> = Tensor::stack(shifted, 2);
    let patches: Tensor<2> = patches
        .reshape([b, c * k, w_out])
        .swap_dims(1, 2)
        .reshape([b * w_out, c * k]);
    let y = patches.matmul(weight.reshape([out, c * k]).transpose());
    y.reshape([b, w_out, out])
        .swap_dims(1, 2)
        .reshape([b, out, 1, w_out])
}

/// The classifier network: `[batch, channels, height, width]` to `[batch, classes]` logits.
#[derive(Module, Debug)]
pub struct ConvClassifier {
    blocks: Vec<ConvBlock>,
    global_pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    head: Linear,
    temporal: bool,
}

impl ConvClassifier {
    /// Class logits for a batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = if self.temporal {
            // [batch, channels, rows, cols] -> [batch, channels * rows, 1, cols]
            let [b, c, h, w] = x.dims();
            x.reshape([b, c * h, 1, w])
        } else {
            x
        };
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x: Tensor<2> = self.global_pool.forward(x).flatten(1, 3);
        self.head.forward(self.dropout.forward(x))
    }
}

/// Several classifiers whose class probabilities are averaged.
#[derive(Debug, Clone)]
pub struct ConvEnsemble {
    /// The member networks.
    pub members: Vec<ConvClassifier>,
}

impl ConvEnsemble {
    /// Mean class probabilities of the members, `[batch, classes]`.
    pub fn probabilities(&self, x: Tensor<4>) -> Tensor<2> {
        let n = self.members.len().max(1) as f64;
        let mut sum: Option<Tensor<2>> = None;
        for m in &self.members {
            let p = burn::tensor::activation::softmax(m.forward(x.clone()), 1);
            sum = Some(match sum {
                Some(s) => s + p,
                None => p,
            });
        }
        sum.map(|s| s / n)
            .unwrap_or_else(|| Tensor::zeros([x.dims()[0], 0], &x.device()))
    }
}

/// A model that maps a batch of `[channels, height, width]` inputs to class logits.
pub trait Classifier: Module + Clone + Send + 'static {
    /// Class logits, `[batch, classes]`.
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;

    /// Logits the training loss sees, given the batch's targets: margin-based losses
    /// (CosFace, ArcFace) penalise the target class here. Defaults to [`Self::logits`].
    fn train_logits(&self, x: Tensor<4>, targets: Tensor<1, burn::tensor::Int>) -> Tensor<2> {
        let _ = targets;
        self.logits(x)
    }
}

impl Classifier for ConvClassifier {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn temporal_conv_equals_the_conv2d_it_replaces() {
        let device = crate::backend::device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        device.seed(5);
        for k in [1, 3, 4, 5] {
            let pad = k / 2;
            let conv = Conv2dConfig::new([6, 7], [1, k])
                .with_padding(PaddingConfig2d::Explicit(0, pad, 0, pad))
                .with_bias(false)
                .init(&device);
            let x = Tensor::<4>::random([3, 6, 1, 11], Distribution::Normal(0.0, 1.0), &device);
            let want = conv.forward(x.clone());
            let got = temporal_conv(x, conv.weight.val());
            assert_eq!(got.dims(), want.dims(), "k = {k}");
            let diff: f32 = (got - want).abs().max().into_scalar();
            assert!(diff < 1e-5, "k = {k}: max difference {diff}");
        }
    }
}
