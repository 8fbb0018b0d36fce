//! The face embedding network and its margin-based training head.
//!
//! [`EmbeddingNet`]: residual conv stages (two 3x3 convs with batch norm and an identity or
//! 1x1 shortcut, 2x2 max pool between stages), global average pooling or the flattened
//! map ([`Head`]), a linear layer and batch norm, then L2 normalisation: faces of one
//! person land close on the unit sphere. [`MarginModel`] trains it as a classifier over the
//! training identities with an additive cosine margin (CosFace) or additive angular margin
//! (ArcFace); only the embedding network is kept afterwards, so people never seen in
//! training can be enrolled.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use profundo_core::activation::relu;
use profundo_core::block::conv_norm_relu;
use profundo_core::manifest::WEIGHTS_FILE;
use profundo_core::model::{Classifier, global_avg_pool};
use profundo_core::norm::batch_norm;
use profundo_core::pool::max_pool2d;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{FacesError, Result};

/// Hyper-parameters of [`EmbeddingNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingNetConfig {
    /// Output channels of each residual stage; a 2x2 max pool follows every stage but the last.
    pub channels: Vec<usize>,
    /// Size of the embedding.
    pub embedding_dim: usize,
    /// Dropout before the embedding layer.
    pub dropout: f64,
    /// At inference, average the embeddings of the image and its mirror image
    /// (test-time augmentation; training is unaffected).
    pub flip_test: bool,
    /// How the last stage's feature map becomes the embedding layer's input.
    pub head: Head,
}

/// How [`EmbeddingNet`] turns the last stage's feature map into the embedding layer's input.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Global average pooling: one value per channel, where on the face it was is lost.
    #[default]
    Average,
    /// The whole map, flattened (ArcFace's output layer "E"): the embedding layer sees
    /// where on the face each feature is.
    Flatten,
}

impl Default for EmbeddingNetConfig {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 64, 128],
            embedding_dim: 128,
            dropout: 0.2,
            flip_test: true,
            head: Head::Average,
        }
    }
}

impl EmbeddingNetConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(FacesError::Config(
                "`channels` needs at least one stage, each with channels > 0".into(),
            ));
        }
        if self.embedding_dim == 0 {
            return Err(FacesError::Config(
                "`embedding_dim` must be positive".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(FacesError::Config(format!(
                "`dropout` must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// The size of the embedding layer's input for inputs of `[channels, height, width]`:
    /// the last stage's channels, times its map's pixels for [`Head::Flatten`] (every stage
    /// but the last halves the map).
    pub fn embedding_inputs(&self, [_, h, w]: [usize; 3]) -> usize {
        let channels = self.channels.last().copied().unwrap_or(0);
        let halvings = self.channels.len().saturating_sub(1) as u32;
        match self.head {
            Head::Average => channels,
            Head::Flatten => channels * (h >> halvings) * (w >> halvings),
        }
    }

    /// Forward multiply-add FLOPs of the network for one image (without the cosine head):
    /// each stage's two 3x3 convolutions, a 1x1 shortcut where the width changes, and the
    /// embedding layer (multiply-adds count two).
    pub fn forward_flops(&self, shape: [usize; 3]) -> usize {
        let [mut prev, mut h, mut w] = shape;
        let mut total = 0;
        for (k, &ch) in self.channels.iter().enumerate() {
            let px = h * w;
            total += 2 * px * ch * prev * 9 + 2 * px * ch * ch * 9;
            if prev != ch {
                total += 2 * px * ch * prev;
            }
            if k + 1 < self.channels.len() {
                (h, w) = (h / 2, w / 2);
            }
            prev = ch;
        }
        total + 2 * self.embedding_inputs(shape) * self.embedding_dim
    }

    /// Builds the network for inputs of `[channels, height, width]`.
    pub fn init(&self, input_shape: [usize; 3], device: &Device) -> EmbeddingNet {
        let mut prev = input_shape[0];
        let mut stages = Vec::with_capacity(self.channels.len());
        for (i, &ch) in self.channels.iter().enumerate() {
            let last = i + 1 == self.channels.len();
            stages.push(ResidualBlock::new(prev, ch, !last, device));
            prev = ch;
        }
        let features = self.embedding_inputs(input_shape);
        EmbeddingNet {
            stages,
            global_pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(features, self.embedding_dim).init(device),
            norm: BatchNormConfig::new(self.embedding_dim).init(device),
            flip_test: self.flip_test,
        }
    }
}

fn conv3(i: usize, o: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// Two 3x3 convolutions with batch norm and a shortcut, then an optional 2x2 max pool.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    norm1: BatchNorm,
    conv2: Conv2d,
    norm2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
    pool: Option<MaxPool2d>,
}

impl ResidualBlock {
    fn new(i: usize, o: usize, pool: bool, device: &Device) -> Self {
        Self {
            conv1: conv3(i, o, device),
            norm1: BatchNormConfig::new(o).init(device),
            conv2: conv3(o, o, device),
            norm2: BatchNormConfig::new(o).init(device),
            shortcut: (i != o).then(|| {
                (
                    Conv2dConfig::new([i, o], [1, 1])
                        .with_bias(false)
                        .init(device),
                    BatchNormConfig::new(o).init(device),
                )
            }),
            pool: pool.then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv_norm_relu(&self.conv1, &self.norm1, x.clone(), true);
        let y = conv_norm_relu(&self.conv2, &self.norm2, y, false);
        let skip = match &self.shortcut {
            Some((conv, norm)) => conv_norm_relu(conv, norm, x, false),
            None => x,
        };
        let y = relu(y + skip);
        match &self.pool {
            Some(p) => max_pool2d(p, y),
            None => y,
        }
    }
}

/// Face images `[batch, channels, height, width]` to unit-length embeddings `[batch, dim]`.
#[derive(Module, Debug)]
pub struct EmbeddingNet {
    stages: Vec<ResidualBlock>,
    /// Kept so that model files keep their layout; the forward pass pools with
    /// [`global_avg_pool`], which computes the same.
    global_pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
    norm: BatchNorm,
    flip_test: bool,
}

impl EmbeddingNet {
    /// The embeddings used to compare faces: [`Self::embed`], averaged with the mirror
    /// image's when the network was configured with `flip_test`.
    pub fn embed_eval(&self, x: Tensor<4>) -> Tensor<2> {
        if self.flip_test {
            // One pass over the batch and its mirror image, then the pairs are summed.
            let b = x.dims()[0];
            let both = self.embed(Tensor::cat(vec![x.clone(), x.flip([3])], 0));
            let d = both.dims()[1];
            l2_normalize(both.clone().slice([0..b, 0..d]) + both.slice([b..2 * b, 0..d]))
        } else {
            self.embed(x)
        }
    }

    /// L2-normalised embeddings of a batch (what training sees).
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for s in &self.stages {
            x = s.forward(x);
        }
        // The embedding layer's input size tells the head apart (see `Head`), so model
        // files need no field for it.
        let [_, channels, _, _] = x.dims();
        let x = if self.fc.weight.dims()[0] == channels {
            global_avg_pool(x)
        } else {
            x.flatten(1, 3)
        };
        let x = batch_norm(&self.norm, self.fc.forward(self.dropout.forward(x)));
        l2_normalize(x)
    }
}

/// Comparison embeddings ([`EmbeddingNet::embed_eval`]) of preprocessed inputs, each of
/// `shape`, in batches of 64: `inputs.len() * dim` values.
pub fn embed_all(
    net: &EmbeddingNet,
    inputs: &[&[f32]],
    shape: [usize; 3],
    device: &Device,
) -> Vec<f32> {
    let [c, h, w] = shape;
    let mut out = Vec::new();
    for chunk in inputs.chunks(64) {
        let buf: Vec<f32> = chunk.iter().flat_map(|x| x.iter().copied()).collect();
        let x = Tensor::<4>::from_data(TensorData::new(buf, [chunk.len(), c, h, w]), device);
        out.extend(
            net.embed_eval(x)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        );
    }
    out
}

/// Comparison embeddings of an ensemble: each member's [`embed_all`] vector side by side,
/// scaled by `1 / sqrt(members)` so that every vector keeps unit length and the cosine of two
/// vectors is the mean of the members' cosines. One member gives [`embed_all`]'s output.
pub fn embed_ensemble(
    nets: &[EmbeddingNet],
    inputs: &[&[f32]],
    shape: [usize; 3],
    device: &Device,
) -> Vec<f32> {
    // The members run side by side: one image's forward pass leaves cores idle.
    let per_member: Vec<Vec<f32>> = nets
        .par_iter()
        .map(|net| embed_all(net, inputs, shape, device))
        .collect();
    side_by_side(&per_member, inputs.len())
}

/// Joins `n` vectors from each member (`per_member[k]` holds member k's, row after row) into
/// `n` vectors of all members' values, scaled by `1 / sqrt(members)`.
pub fn side_by_side(per_member: &[Vec<f32>], n: usize) -> Vec<f32> {
    if let [only] = per_member {
        return only.clone();
    }
    let scale = 1.0 / (per_member.len() as f32).sqrt();
    let rows: Vec<_> = per_member
        .iter()
        .map(|m| m.chunks((m.len() / n.max(1)).max(1)).collect::<Vec<_>>())
        .collect();
    let mut out = Vec::with_capacity(per_member.iter().map(Vec::len).sum());
    for i in 0..n {
        for member in &rows {
            out.extend(member[i].iter().map(|v| v * scale));
        }
    }
    out
}

/// The weights file of ensemble member `k`: the usual weights file for the first, so a
/// one-member model is laid out as before.
pub fn member_weights_file(k: usize) -> String {
    if k == 0 {
        WEIGHTS_FILE.to_string()
    } else {
        format!("member-{k}.safetensors")
    }
}

/// Rows scaled to unit length.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).add_scalar(1e-12).sqrt();
    x / norm
}

/// The margin-based loss used to train embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MarginLoss {
    /// `cosface` (additive cosine margin) or `arcface` (additive angular margin).
    pub kind: MarginKind,
    /// Scale `s` applied to the cosines.
    pub scale: f32,
    /// Margin `m` (cosine units for CosFace, radians for ArcFace).
    pub margin: f32,
}

/// Which margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarginKind {
    /// CosFace / AM-Softmax: `s * (cos θ - m)` for the target class.
    Cosface,
    /// ArcFace: `s * cos(θ + m)` for the target class.
    Arcface,
}

impl Default for MarginLoss {
    fn default() -> Self {
        Self {
            kind: MarginKind::Cosface,
            scale: 16.0,
            margin: 0.2,
        }
    }
}

impl MarginLoss {
    /// Checks the settings.
    pub fn check(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(FacesError::Config(format!(
                "loss scale must be positive, got {}",
                self.scale
            )));
        }
        if !(0.0..1.5).contains(&self.margin) {
            return Err(FacesError::Config(format!(
                "loss margin must be in [0, 1.5), got {}",
                self.margin
            )));
        }
        Ok(())
    }
}

/// An embedding network plus one learned unit vector per training identity; the logits are
/// scaled cosines, with the margin applied to the target class during training.
#[derive(Module, Debug)]
pub struct MarginModel {
    /// The embedding network (the part that is kept).
    pub net: EmbeddingNet,
    weight: Param<Tensor<2>>,
    scale: f32,
    margin: f32,
    arcface: bool,
}

impl MarginModel {
    /// A fresh model for `classes` training identities.
    pub fn new(
        net: EmbeddingNet,
        dim: usize,
        classes: usize,
        loss: &MarginLoss,
        device: &Device,
    ) -> Self {
        Self {
            net,
            weight: Initializer::XavierUniform { gain: 1.0 }.init_with(
                [classes, dim],
                Some(dim),
                Some(classes),
                device,
            ),
            scale: loss.scale,
            margin: loss.margin,
            arcface: loss.kind == MarginKind::Arcface,
        }
    }

    fn cosines(&self, x: Tensor<4>) -> Tensor<2> {
        let e = self.net.embed(x);
        let w = l2_normalize(self.weight.val());
        e.matmul(w.transpose())
    }
}

impl Classifier for MarginModel {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.cosines(x).mul_scalar(self.scale)
    }

    fn train_logits(&self, x: Tensor<4>, targets: Tensor<1, Int>) -> Tensor<2> {
        let cos = self.cosines(x);
        let classes = cos.dims()[1];
        let onehot: Tensor<2> = targets.one_hot::<2>(classes).float();
        let m = self.margin;
        let target_logit = if self.arcface {
            let c = cos.clone().clamp(-1.0 + 1e-6, 1.0 - 1e-6);
            let sin = c.clone().powi_scalar(2).neg().add_scalar(1.0).sqrt();
            let phi = c.clone().mul_scalar(m.cos()) - sin.mul_scalar(m.sin());
            // Past θ = π - m, cos(θ + m) stops decreasing; use a linear penalty there.
            let th = (std::f32::consts::PI - m).cos();
            let fallback = c.clone().sub_scalar((std::f32::consts::PI - m).sin() * m);
            phi.mask_where(c.lower_equal_elem(th), fallback)
        } else {
            cos.clone().sub_scalar(m)
        };
        let out = cos.clone() + (target_logit - cos) * onehot;
        out.mul_scalar(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flex training device, seeded.
    fn flex_training_device(seed: u64) -> Device {
        let device =
            profundo_core::backend::train_device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
        device.seed(seed);
        device
    }

    /// Asserts that `e` holds `rows` embeddings, each of unit length.
    fn assert_unit_rows(e: Tensor<2>, rows: usize) {
        let [n, dim] = e.dims();
        assert_eq!(n, rows);
        let e: Vec<f32> = e.into_data().try_to_vec().unwrap();
        for row in e.chunks(dim) {
            let norm: f32 = row.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
    }

    /// The two-stage (4, 8 channels), 6-d network config both network tests build on.
    fn tiny_config(head: Head, flip_test: bool) -> EmbeddingNetConfig {
        EmbeddingNetConfig {
            channels: vec![4, 8],
            embedding_dim: 6,
            dropout: 0.0,
            flip_test,
            head,
        }
    }

    /// A batch of two 1x8x6 images whose `i`-th value is `value(i)`.
    fn tiny_batch(device: &Device, value: impl Fn(f32) -> f32) -> Tensor<4> {
        Tensor::<4>::from_data(
            TensorData::new((0..2 * 48).map(|i| value(i as f32)).collect(), [2, 1, 8, 6]),
            device,
        )
    }

    #[test]
    fn members_side_by_side_keep_unit_length_and_average_their_cosines() {
        // Two members, two unit vectors each (dim 2 and dim 2).
        let a = vec![1.0, 0.0, 0.6, 0.8];
        let b = vec![0.0, 1.0, 0.0, 1.0];
        let joined = side_by_side(&[a.clone(), b.clone()], 2);
        assert_eq!(joined.len(), 8);
        let (u, v) = joined.split_at(4);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(u, u) - 1.0).abs() < 1e-6 && (dot(v, v) - 1.0).abs() < 1e-6);
        // Member cosines 0.6 and 1.0: the joined cosine is their mean.
        assert!((dot(u, v) - 0.8).abs() < 1e-6, "{}", dot(u, v));
        // Each row holds member 0's values, then member 1's.
        let s = 1.0 / 2f32.sqrt();
        assert_eq!(u, &[s, 0.0, 0.0, s]);
        assert_eq!(side_by_side(std::slice::from_ref(&a), 2), a);
        assert_eq!(member_weights_file(0), WEIGHTS_FILE);
        assert_ne!(member_weights_file(1), WEIGHTS_FILE);
    }

    #[test]
    fn embeddings_have_unit_length_and_the_margin_lowers_only_the_target_logit() {
        let device = flex_training_device(3);
        let cfg = tiny_config(Head::Average, true);
        let net = cfg.init([1, 8, 6], &device);
        let x = tiny_batch(&device, |i| (i * 0.37).sin());
        for kind in [MarginKind::Cosface, MarginKind::Arcface] {
            let loss = MarginLoss {
                kind,
                scale: 10.0,
                margin: 0.3,
            };
            let model = MarginModel::new(cfg.init([1, 8, 6], &device), 6, 3, &loss, &device);
            let plain: Vec<f32> = model.logits(x.clone()).into_data().try_to_vec().unwrap();
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
            let margin: Vec<f32> = model
                .train_logits(x.clone(), y)
                .into_data()
                .try_to_vec()
                .unwrap();
            for (i, (a, b)) in plain.iter().zip(&margin).enumerate() {
                let target = i == 2 || i == 3;
                if target {
                    assert!(b < a, "{kind:?}: target logit {b} not below {a}");
                } else {
                    assert!((a - b).abs() < 1e-5, "{kind:?}: other logit changed");
                }
            }
        }
        assert_unit_rows(net.embed(x.clone()), 2);
        assert_unit_rows(net.embed_eval(x), 2);
    }

    #[test]
    fn a_flatten_head_sees_the_whole_map_and_still_gives_unit_length_embeddings() {
        let device = flex_training_device(5);
        let cfg = tiny_config(Head::Flatten, false);
        // 8x6 input, one 2x2 pool: the last stage's map is 8 channels of 4x3.
        let net = cfg.init([1, 8, 6], &device);
        assert_eq!(net.fc.weight.dims(), [8 * 4 * 3, 6]);
        let averaged = tiny_config(Head::Average, false).init([1, 8, 6], &device);
        assert_eq!(averaged.fc.weight.dims(), [8, 6]);
        let x = tiny_batch(&device, |i| (i * 0.53).cos());
        assert_unit_rows(net.embed(x.clone()), 2);
        assert_unit_rows(averaged.embed(x), 2);
        // Model files from before the setting existed still read as averaging.
        let old: EmbeddingNetConfig =
            serde_json::from_str(r#"{"channels": [4], "embedding_dim": 2}"#).unwrap();
        assert_eq!(old.head, Head::Average);
    }
}
