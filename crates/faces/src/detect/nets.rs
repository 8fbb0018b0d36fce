//! MTCNN's three networks as Burn modules, laid out as facenet-pytorch's `PNet`, `RNet` and
//! `ONet` (same field names, so the PyTorch state dicts load by name).
//!
//! - [`PNet`]: fully convolutional proposal network; on an image it gives, for each 12x12
//!   window at stride 2, a face probability and a box regression.
//! - [`RNet`]: refines 24x24 candidate crops (probability, box regression).
//! - [`ONet`]: looks at 48x48 crops (probability, box regression, five landmarks).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

fn conv(channels: [usize; 2], kernel: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel]).init(device)
}

fn prelu(n: usize, device: &Device) -> PRelu {
    PReluConfig::new().with_num_parameters(n).init(device)
}

/// PyTorch's `MaxPool2d(k, s, ceil_mode=True)`.
fn pool(kernel: usize, stride: usize) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_ceil_mode(true)
        .init()
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
    pool1: MaxPool2d,
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
            pool1: pool(2, 2),
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
        let x = self.prelu1.forward(self.conv1.forward(x));
        let x = self.pool1.forward(x);
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = self.prelu3.forward(self.conv3.forward(x));
        let probs = softmax(self.conv4_1.forward(x.clone()), 1);
        let [n, _, h, w] = probs.dims();
        let face = probs.narrow(1, 1, 1).reshape([n, h, w]);
        (self.conv4_2.forward(x), face)
    }
}

/// The refinement network.
#[derive(Module, Debug)]
pub struct RNet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
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
            pool1: pool(3, 2),
            conv2: conv([28, 48], 3, device),
            prelu2: prelu(48, device),
            pool2: pool(3, 2),
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
        let x = self
            .pool1
            .forward(self.prelu1.forward(self.conv1.forward(x)));
        let x = self
            .pool2
            .forward(self.prelu2.forward(self.conv2.forward(x)));
        let x = self.prelu3.forward(self.conv3.forward(x));
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
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
    conv3: Conv2d,
    prelu3: PRelu,
    pool3: MaxPool2d,
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
            pool1: pool(3, 2),
            conv2: conv([32, 64], 3, device),
            prelu2: prelu(64, device),
            pool2: pool(3, 2),
            conv3: conv([64, 64], 3, device),
            prelu3: prelu(64, device),
            pool3: pool(2, 2),
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
        let x = self
            .pool1
            .forward(self.prelu1.forward(self.conv1.forward(x)));
        let x = self
            .pool2
            .forward(self.prelu2.forward(self.conv2.forward(x)));
        let x = self
            .pool3
            .forward(self.prelu3.forward(self.conv3.forward(x)));
        let x = self.prelu4.forward(self.conv4.forward(x));
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
