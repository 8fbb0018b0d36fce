//! ReLU with a faster gradient on LibTorch; every other backend runs Burn's `relu`.
//!
//! Burn 0.22 differentiates ReLU with its default `relu_backward` (a comparison, then a
//! masked fill), which burn-tch does not override: in a perf profile of the faces network's
//! training step on LibTorch, LibTorch's `masked_fill` kernel took 14% of the time. On
//! LibTorch with autodiff, [`relu`] takes the gradient with LibTorch's `threshold_backward`,
//! one pass, as PyTorch does.

// burn-ndarray and burn-tch are deprecated upstream but still backends profundo offers.
#![allow(deprecated)]

#[cfg(feature = "tch")]
mod libtorch;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, NdArray, backend_extension};
use burn::tensor::Tensor;

/// ReLU as a backend operation.
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait ReluOp: Backend {
    /// `max(x, 0)` elementwise.
    fn relu_op(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }
}

impl ReluOp for Flex {}
impl ReluOp for NdArray {}
impl<C: CheckpointStrategy> ReluOp for Autodiff<Flex, C> {}
impl<C: CheckpointStrategy> ReluOp for Autodiff<NdArray, C> {}

/// `burn::tensor::activation::relu(x)`, with LibTorch's gradient on LibTorch.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as ReluOp>::relu_op(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// On the CPU backends without their own path, [`relu`] routes through the extension to
    /// Burn's `relu`, gradient included (a backend the extension does not list would panic
    /// here); LibTorch's own gradient is compared with Burn's in `tests/tch.rs`.
    #[test]
    fn equals_burns_relu_with_its_gradient() {
        for device in [Device::flex(), Device::ndarray()] {
            let ad = device.autodiff();
            let x: Tensor<2> = Tensor::random([5, 7], Distribution::Normal(0.0, 1.0), &ad);
            let run = |own: bool| {
                let x = x.clone().detach().require_grad();
                let y = if own {
                    relu(x.clone())
                } else {
                    burn::tensor::activation::relu(x.clone())
                };
                let g = (y.clone() * y.clone()).sum().backward();
                let dx = x.grad(&g).expect("gradient");
                (y.detach().into_data(), dx.into_data())
            };
            assert_eq!(run(true), run(false));
        }
    }
}
