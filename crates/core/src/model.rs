//! What every classifier the shared training loop trains has in common: the
//! [`Classifier`] trait, the batch-norm statistics a network is used with ([`NormStats`]),
//! and [`global_avg_pool`]. The networks themselves live in their domains
//! (`profundo_speech::model`, `profundo_faces::model`).

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

/// Which statistics batch norm layers normalise with when a network is used (not trained).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum NormStats {
    /// The running statistics gathered in training; any batch size, one item included.
    #[default]
    Running,
    /// The batch's own statistics, `weight` of them blended with the running ones
    /// (`1 - weight`) as a mixture: passing all of one group's items (one speaker's clips)
    /// as one batch adapts every layer to that group (AdaBN, Li et al. 2016); the running
    /// statistics steady the estimate when the batch is small ([`NormStats::for_group`]).
    Batch {
        /// Weight of the batch's statistics, in `[0, 1]`.
        weight: f64,
    },
}

/// How many items the running statistics count for against a group's own
/// ([`NormStats::for_group`]). Measured through `speech recognize --same-speaker` on one
/// held-out speaker (README): with 30, batches of 1 / 3 clips score 77.4 / 84.4% against
/// 34.0 / 75.0% on a batch's own statistics alone, and all 500 clips score the same.
pub const GROUP_PRIOR_ITEMS: f64 = 30.0;

impl NormStats {
    /// The statistics for `items` items of one group passed as one batch: their own,
    /// weighted `items / (items + GROUP_PRIOR_ITEMS)` against the running statistics.
    pub fn for_group(items: usize) -> Self {
        let n = items as f64;
        Self::Batch {
            weight: n / (n + GROUP_PRIOR_ITEMS),
        }
    }
}

/// Batch norm of `y` (`[batch, channels, height, width]`) with the mixture of its own
/// statistics (weight `w`) and the layer's running ones ([`NormStats::Batch`]): mean
/// `w m_b + (1 - w) m_r`, variance `w v_b + (1 - w) v_r + w (1 - w) (m_b - m_r)^2`.
pub fn blended_batch_norm(norm: &BatchNorm, y: Tensor<4>, w: f64) -> Tensor<4> {
    let [b, c, h, wd] = y.dims();
    let device = y.device();
    let per_channel: Tensor<2> = y.clone().swap_dims(0, 1).reshape([c, b * h * wd]);
    let (var_b, mean_b) = per_channel.var_mean_bias(1);
    let (var_b, mean_b): (Tensor<1>, Tensor<1>) = (var_b.reshape([c]), mean_b.reshape([c]));
    let mean_r = norm.running_mean.value().to_device(&device);
    let var_r = norm.running_var.value().to_device(&device);
    let gap = (mean_b.clone() - mean_r.clone()).powi_scalar(2);
    let mean = mean_b * w + mean_r * (1.0 - w);
    let var = var_b * w + var_r * (1.0 - w) + gap * (w * (1.0 - w));
    burn::tensor::module::batch_norm(
        y,
        norm.gamma.val(),
        norm.beta.val(),
        mean,
        var,
        norm.epsilon,
    )
}

/// Global average pooling, `[batch, channels, height, width]` to `[batch, channels]`: what
/// `AdaptiveAvgPool2d` with output `[1, 1]` computes, as one mean over the flattened
/// feature map. burn-flex 0.22's adaptive pooling runs a rayon task per (item, channel)
/// pair, nested: for the speech CNN's 64 x 128 feature maps of 12 frames it took about half
/// of a batch's inference time (perf, release build), where this mean is a reduction over
/// contiguous rows on every backend.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    let x: Tensor<3> = x.reshape([b, c, h * w]);
    x.mean_dim(2).reshape([b, c])
}

/// A model that maps a batch of `[channels, height, width]` inputs to class logits.
pub trait Classifier: Module + Clone + Send + 'static {
    /// Class logits, `[batch, classes]`.
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;

    /// Class logits with batch norm using `stats`. Defaults to [`Self::logits`], for
    /// networks whose normalisation does not depend on the batch.
    fn logits_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        let _ = stats;
        self.logits(x)
    }

    /// Logits the training loss sees, given the batch's targets: margin-based losses
    /// (CosFace, ArcFace) penalise the target class here. Defaults to [`Self::logits`].
    fn train_logits(&self, x: Tensor<4>, targets: Tensor<1, burn::tensor::Int>) -> Tensor<2> {
        let _ = targets;
        self.logits(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::AdaptiveAvgPool2dConfig;
    use burn::tensor::{Device, Distribution};

    /// `global_avg_pool` computes what the `AdaptiveAvgPool2d` layer it replaced does, on
    /// every CPU backend.
    #[test]
    #[allow(deprecated)] // burn-ndarray is deprecated upstream but still offered.
    fn global_avg_pool_equals_adaptive_pooling_to_one_pixel() {
        let layer = AdaptiveAvgPool2dConfig::new([1, 1]).init();
        for device in [Device::flex(), Device::ndarray()] {
            let x = Tensor::<4>::random([3, 5, 7, 4], Distribution::Normal(0.0, 1.0), &device);
            let want: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec().unwrap();
            let got: Vec<f32> = global_avg_pool(x).into_data().try_to_vec().unwrap();
            assert_eq!(got.len(), 15);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-6, "{g} vs {w}");
            }
        }
    }
}
