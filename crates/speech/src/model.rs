//! The speech classifier network over `[channels, height, width]` inputs (log-mel or MFCC
//! frames): conv blocks with batch norm, global average pooling, a linear head; several
//! such networks average their probabilities as an ensemble.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};
use profundo_core::model::{Classifier, NormStats, blended_batch_norm, global_avg_pool};
use profundo_core::{CoreError, activation, block, conv, norm, pool};
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, CoreError>;

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

    /// Forward FLOPs of the network for one input of `[channels, rows, cols]`: every
    /// convolution (no bias) and the linear head (multiply-adds count two).
    pub fn forward_flops(&self, [c, h, w]: [usize; 3], classes: usize) -> usize {
        let (mut prev, mut h, mut w, kh) = if self.temporal {
            (c * h, 1, w, 1)
        } else {
            (c, h, w, self.kernel)
        };
        let mut total = 0;
        for (k, &ch) in self.channels.iter().enumerate() {
            total += 2 * h * w * ch * prev * kh * self.kernel;
            if k + 1 < self.channels.len() {
                if !self.temporal {
                    h /= 2;
                }
                w /= 2;
            }
            prev = ch;
        }
        total + 2 * prev * classes
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

/// How batch norm treats the groups (speakers) of a training set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormScope {
    /// Training batches mix groups; held-out items use the running statistics.
    #[default]
    Pooled,
    /// Every training batch holds one group's items, and a held-out group is normalised
    /// with the statistics of all its items, passed as one batch ([`NormStats::for_group`]):
    /// unsupervised adaptation to a new speaker, layer by layer.
    Group,
}

impl BatchNormScope {
    /// The statistics to normalise `items` items of one group with, passed as one batch.
    pub fn stats_for_group(self, items: usize) -> NormStats {
        match self {
            Self::Pooled => NormStats::Running,
            Self::Group => NormStats::for_group(items),
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
    fn forward(&self, x: Tensor<4>, stats: NormStats) -> Tensor<4> {
        // Every block `init` builds has stride 1, no bias and padding k / 2, which is what
        // `temporal_conv` assumes; a `[1, k]` kernel over a height-1 input can take it.
        // On flex and LibTorch, `block::conv_norm_relu` runs profundo's kernels (flex) or
        // LibTorch's operations and gradients, faster than both.
        let own_path = conv::has_own_path(&x.device());
        let x = match stats {
            NormStats::Running if own_path => {
                block::conv_norm_relu(&self.conv, &self.norm, x, true)
            }
            NormStats::Running => {
                activation::relu(norm::batch_norm(&self.norm, self.convolve(x, own_path)))
            }
            NormStats::Batch { weight } => activation::relu(blended_batch_norm(
                &self.norm,
                self.convolve(x, own_path),
                weight,
            )),
        };
        match &self.pool {
            Some(p) => pool::max_pool2d(p, x),
            None => x,
        }
    }

    /// The block's convolution: [`conv::conv2d`] where it has its own path, else the
    /// matrix-product [`temporal_conv`] for a `[1, k]` kernel over a height-1 input, else
    /// Burn's layer.
    fn convolve(&self, x: Tensor<4>, own_path: bool) -> Tensor<4> {
        let [_, _, kh, _] = self.conv.weight.dims();
        if own_path {
            conv::conv2d(&self.conv, x)
        } else if x.dims()[2] == 1 && kh == 1 {
            temporal_conv(x, self.conv.weight.val())
        } else {
            self.conv.forward(x)
        }
    }
}

/// A `[1, k]` convolution of `[batch, channels, 1, width]` inputs (stride 1, zero padding
/// `k / 2` on both sides, no bias: the temporal blocks' settings) as one matrix product:
/// the `k` shifted copies of the padded input form each position's patch, and the weight
/// `[out, channels, 1, k]` is read as a `[out, channels * k]` matrix.
///
/// The result equals `Conv2d::forward`. Training is why it exists: Burn 0.22 computes a
/// convolution's gradients with its default decomposition (the weight gradient as a
/// convolution with batch and channel axes swapped), while a matrix product's backward is
/// two more matrix products. Flex and LibTorch now have faster paths ([`conv::conv2d`]), so
/// [`ConvClassifier`] uses it on ndarray only.
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
    /// Kept so that model files keep their layout; the forward pass pools with
    /// [`global_avg_pool`], which computes the same.
    global_pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    head: Linear,
    temporal: bool,
}

impl ConvClassifier {
    /// Class logits for a batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, NormStats::Running)
    }

    /// Class logits for a batch, batch norm using `stats`. Training passes
    /// [`NormStats::Running`], with which batch norm on an autodiff device uses the batch's
    /// statistics and updates the running ones.
    pub fn forward_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        let mut x = if self.temporal {
            // [batch, channels, rows, cols] -> [batch, channels * rows, 1, cols]
            let [b, c, h, w] = x.dims();
            x.reshape([b, c * h, 1, w])
        } else {
            x
        };
        for block in &self.blocks {
            x = block.forward(x, stats);
        }
        let x = global_avg_pool(x);
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
        self.probabilities_with(x, NormStats::Running)
    }

    /// [`Self::probabilities`] with batch norm using `stats`.
    pub fn probabilities_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        let n = self.members.len().max(1) as f64;
        let mut sum: Option<Tensor<2>> = None;
        for m in &self.members {
            let p = burn::tensor::activation::softmax(m.forward_with(x.clone(), stats), 1);
            sum = Some(match sum {
                Some(s) => s + p,
                None => p,
            });
        }
        sum.map(|s| s / n)
            .unwrap_or_else(|| Tensor::zeros([x.dims()[0], 0], &x.device()))
    }
}

impl Classifier for ConvClassifier {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }

    fn logits_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        self.forward_with(x, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn batch_statistics_adapt_to_the_batch_and_running_ones_do_not() {
        let device =
            profundo_core::backend::device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
        device.seed(3);
        let cfg = ConvClassifierConfig {
            channels: vec![8, 8],
            kernel: 3,
            dropout: 0.0,
            temporal: true,
        };
        let net = cfg.init([1, 5, 12], 4, &device);
        let x = Tensor::<4>::random([6, 1, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let logits = |x: Tensor<4>, stats| -> Vec<f32> {
            net.forward_with(x, stats).into_data().try_to_vec().unwrap()
        };
        // Batch norm over a convolution without bias: scaling a whole batch by 10 scales
        // every block's output and its batch statistics alike, so the logits stay
        // (up to epsilon); with the fixed running statistics they move.
        let max_diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max)
        };
        let own = NormStats::Batch { weight: 1.0 };
        let batch = logits(x.clone(), own);
        let batch_scaled = logits(x.clone() * 10.0, own);
        assert!(
            max_diff(&batch, &batch_scaled) < 1e-3,
            "{batch:?} / {batch_scaled:?}"
        );
        let running = logits(x.clone(), NormStats::Running);
        let running_scaled = logits(x.clone() * 10.0, NormStats::Running);
        assert!(max_diff(&running, &running_scaled) > 0.1);
        let none_of_the_batch = logits(x.clone(), NormStats::Batch { weight: 0.0 });
        assert!(max_diff(&running, &none_of_the_batch) < 1e-5);
        // Half and half lies between (it moves with the scale, less than Running).
        let half_scaled = logits(x.clone() * 10.0, NormStats::Batch { weight: 0.5 });
        let half = logits(x.clone(), NormStats::Batch { weight: 0.5 });
        let moved = max_diff(&half, &half_scaled);
        assert!(
            moved > 1e-3 && moved < max_diff(&running, &running_scaled),
            "{moved}"
        );
        let n = [1usize, 10, 500].map(|n| match NormStats::for_group(n) {
            NormStats::Batch { weight } => weight,
            NormStats::Running => -1.0,
        });
        assert!(
            n[0] < 0.05 && (n[1] - 0.25).abs() < 1e-9 && n[2] > 0.9,
            "{n:?}"
        );
        assert_eq!(
            running,
            logits(x, NormStats::Running),
            "`forward` is Running"
        );
    }

    #[test]
    fn temporal_conv_equals_the_conv2d_it_replaces() {
        let device =
            profundo_core::backend::device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
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
