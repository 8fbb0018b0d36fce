//! MTCNN's three networks as Burn modules, laid out as facenet-pytorch's `PNet`, `RNet` and
//! `ONet` (same field names, so the PyTorch state dicts load by name; the parameter-free
//! max pools are functions, not fields).
//!
//! - [`PNet`]: fully convolutional proposal network; on an image it gives, for each 12x12
//!   window at stride 2, a face probability and a box regression.
//! - [`RNet`]: refines 24x24 candidate crops (probability, box regression).
//! - [`ONet`]: looks at 48x48 crops (probability, box regression, five landmarks).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use profundo_core::conv::conv2d;
use rayon::prelude::*;

fn conv(channels: [usize; 2], kernel: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel]).init(device)
}

fn prelu(n: usize, device: &Device) -> PRelu {
    PReluConfig::new().with_num_parameters(n).init(device)
}

/// `conv.forward(x)` through profundo's stride-one convolution kernel (im2col + GEMM on
/// flex, several times faster than Burn's direct convolution on these small layers), with
/// the bias added after: the kernel takes bias-free layers only.
fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let mut plain = conv.clone();
    let Some(bias) = plain.bias.take() else {
        return conv2d(conv, x);
    };
    let y = conv2d(&plain, x);
    let [c] = bias.dims();
    y + bias.val().reshape([1, c, 1, 1])
}

/// PyTorch's `MaxPool2d(k, s, ceil_mode=True)` (no padding): output size
/// `ceil((n - k) / s) + 1`, the last window clipped to the input. Computed on the host, one
/// plane per task: Burn's ceil-mode pooling took most of R-Net's time (10 of 20 ms for 168
/// crops on 2 cores).
fn max_pool_ceil(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let out = |len: usize| (len.saturating_sub(kernel)).div_ceil(stride) + 1;
    let (oh, ow) = (out(h), out(w));
    let device = x.device();
    let input = x
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let mut output = vec![0.0f32; n * c * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for oy in 0..oh {
                let (y0, y1) = (oy * stride, (oy * stride + kernel).min(h));
                for ox in 0..ow {
                    let (x0, x1) = (ox * stride, (ox * stride + kernel).min(w));
                    let mut m = f32::NEG_INFINITY;
                    for row in src[y0 * w..y1 * w].chunks(w) {
                        m = row[x0..x1].iter().fold(m, |m, v| m.max(*v));
                    }
                    dst[oy * ow + ox] = m;
                }
            }
        });
    Tensor::from_data(TensorData::new(output, [n, c, oh, ow]), &device)
}

/// Flattens `[n, c, h, w]` as PyTorch's `x.permute(0, 3, 2, 1).view(n, -1)` does (the order
/// the dense layers were trained on, inherited from the Caffe weights).
fn flatten_whc(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.permute([0, 3, 2, 1]).reshape([n, w * h * c])
}

/// The proposal network.
#[derive(Module, Debug)]
pub struct PNet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

impl PNet {
    /// An untrained network (weights come from [`super::weights`]).
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv([3, 10], 3, device),
            prelu1: prelu(10, device),
            conv2: conv([10, 16], 3, device),
            prelu2: prelu(16, device),
            conv3: conv([16, 32], 3, device),
            prelu3: prelu(32, device),
            conv4_1: conv([32, 2], 1, device),
            conv4_2: conv([32, 4], 1, device),
        }
    }

    /// `[n, 3, h, w]` normalised images to (box regression `[n, 4, h', w']`, face
    /// probability `[n, h', w']`), one value per 12x12 window at stride 2.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<3>) {
        let x = self.prelu1.forward(conv_forward(&self.conv1, x));
        let x = max_pool_ceil(x, 2, 2);
        let x = self.prelu2.forward(conv_forward(&self.conv2, x));
        let x = self.prelu3.forward(conv_forward(&self.conv3, x));
        let probs = softmax(conv_forward(&self.conv4_1, x.clone()), 1);
        let [n, _, h, w] = probs.dims();
        let face = probs.narrow(1, 1, 1).reshape([n, h, w]);
        (conv_forward(&self.conv4_2, x), face)
    }
}

/// The refinement network.
#[derive(Module, Debug)]
pub struct RNet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    dense4: Linear,
    prelu4: PRelu,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    /// An untrained network.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv([3, 28], 3, device),
            prelu1: prelu(28, device),
            conv2: conv([28, 48], 3, device),
            prelu2: prelu(48, device),
            conv3: conv([48, 64], 2, device),
            prelu3: prelu(64, device),
            dense4: LinearConfig::new(576, 128).init(device),
            prelu4: prelu(128, device),
            dense5_1: LinearConfig::new(128, 2).init(device),
            dense5_2: LinearConfig::new(128, 4).init(device),
        }
    }

    /// `[n, 3, 24, 24]` crops to (box regression `[n, 4]`, face probability `[n]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<1>) {
        let x = max_pool_ceil(self.prelu1.forward(conv_forward(&self.conv1, x)), 3, 2);
        let x = max_pool_ceil(self.prelu2.forward(conv_forward(&self.conv2, x)), 3, 2);
        let x = self.prelu3.forward(conv_forward(&self.conv3, x));
        let x = self.prelu4.forward(self.dense4.forward(flatten_whc(x)));
        (
            self.dense5_2.forward(x.clone()),
            face_probability(self.dense5_1.forward(x)),
        )
    }
}

/// The output network.
#[derive(Module, Debug)]
pub struct ONet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    conv4: Conv2d,
    prelu4: PRelu,
    dense5: Linear,
    prelu5: PRelu,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    /// An untrained network.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv([3, 32], 3, device),
            prelu1: prelu(32, device),
            conv2: conv([32, 64], 3, device),
            prelu2: prelu(64, device),
            conv3: conv([64, 64], 3, device),
            prelu3: prelu(64, device),
            conv4: conv([64, 128], 2, device),
            prelu4: prelu(128, device),
            dense5: LinearConfig::new(1152, 256).init(device),
            prelu5: prelu(256, device),
            dense6_1: LinearConfig::new(256, 2).init(device),
            dense6_2: LinearConfig::new(256, 4).init(device),
            dense6_3: LinearConfig::new(256, 10).init(device),
        }
    }

    /// `[n, 3, 48, 48]` crops to (box regression `[n, 4]`, landmarks `[n, 10]` (five x
    /// then five y, as fractions of the box), face probability `[n]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>, Tensor<1>) {
        let x = max_pool_ceil(self.prelu1.forward(conv_forward(&self.conv1, x)), 3, 2);
        let x = max_pool_ceil(self.prelu2.forward(conv_forward(&self.conv2, x)), 3, 2);
        let x = max_pool_ceil(self.prelu3.forward(conv_forward(&self.conv3, x)), 2, 2);
        let x = self.prelu4.forward(conv_forward(&self.conv4, x));
        let x = self.prelu5.forward(self.dense5.forward(flatten_whc(x)));
        (
            self.dense6_2.forward(x.clone()),
            self.dense6_3.forward(x.clone()),
            face_probability(self.dense6_1.forward(x)),
        )
    }
}

/// Softmax over the two logits (not-face, face), keeping the face probability.
fn face_probability(logits: Tensor<2>) -> Tensor<1> {
    let [n, _] = logits.dims();
    softmax(logits, 1).narrow(1, 1, 1).reshape([n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;

    /// The host pooling gives Burn's ceil-mode max pool, on sizes that leave a partial
    /// last window and sizes that do not.
    #[test]
    fn ceil_mode_pooling_matches_burns() {
        let device = Device::flex();
        for (k, s, h, w) in [(2, 2, 7, 6), (3, 2, 22, 22), (3, 2, 11, 10), (2, 2, 8, 8)] {
            let x = Tensor::<4>::random([2, 3, h, w], burn::tensor::Distribution::Default, &device);
            let burn_pool = MaxPool2dConfig::new([k, k])
                .with_strides([s, s])
                .with_ceil_mode(true)
                .init();
            let want = burn_pool.forward(x.clone()).into_data();
            let got = max_pool_ceil(x, k, s).into_data();
            assert_eq!(got.shape(), want.shape(), "k {k} s {s} {h}x{w}");
            assert_eq!(
                got.try_to_vec::<f32>().unwrap(),
                want.try_to_vec::<f32>().unwrap()
            );
        }
    }
}
