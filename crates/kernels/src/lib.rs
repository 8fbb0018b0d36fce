//! profundo's hand-written kernels for the layers every conv network here repeats, behind
//! a small API of functions over Burn's own modules (so model files keep Burn's layout):
//!
//! - [`conv::conv2d`]: stride-1 convolution, an im2col kernel with its gradients on flex;
//! - [`pool::max_pool2d`]: window max pooling with an argmax backward on flex;
//! - [`norm::batch_norm`]: batch normalisation (training statistics and running-average
//!   update) with its fused backward on flex;
//! - [`activation::relu`]: ReLU with LibTorch's own gradient on LibTorch;
//! - [`block::conv_norm_relu`]: the three in a row, fused into one LibTorch operation when
//!   training on LibTorch.
//!
//! On LibTorch (the `tch` feature) each runs LibTorch's operation and autograd; on every
//! other backend Burn's operation. Each kernel is unit-tested against Burn's operation or
//! a textbook loop, forward and backward.

#![warn(missing_docs)]

pub mod activation;
pub mod block;
pub mod conv;
mod flex;
mod kernel_calls;
#[cfg(feature = "tch")]
mod libtorch_autograd;
pub mod norm;
pub mod pool;
