//! [`StrideOneConv`] on LibTorch with autodiff: LibTorch's convolution and, for its
//! gradients, LibTorch's own autograd ([`crate::libtorch_autograd`], which runs
//! `convolution_backward`) instead of Burn's default decomposition (the weight gradient as
//! a convolution with batch and channel axes swapped, the input gradient as a transposed
//! convolution). Without autodiff, Burn's `conv2d` already is LibTorch's.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, LibTorch};

use super::StrideOneConv;
use crate::libtorch_autograd::{LibTorchAutograd, record};

pub(crate) fn conv(x: &tch::Tensor, weight: &tch::Tensor, ph: usize, pw: usize) -> tch::Tensor {
    let padding = [ph as i64, pw as i64];
    x.conv2d(weight, None::<&tch::Tensor>, [1, 1], padding, [1, 1], 1)
}

impl<C: CheckpointStrategy> StrideOneConv for Autodiff<LibTorch, C> {
    fn conv2d_stride_one(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        ph: usize,
        pw: usize,
    ) -> FloatTensor<Self> {
        let prep = LibTorchAutograd::<2>
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let inputs = [x.primitive(), weight.primitive()];
        match prep {
            OpsKind::Tracked(prep) => {
                let (state, value, ()) = record(inputs, |[x, w]| (conv(x, w, ph, pw), ()));
                prep.finish(state, value)
            }
            OpsKind::UnTracked(prep) => prep.finish(TchTensor::new(conv(
                &inputs[0].tensor,
                &inputs[1].tensor,
                ph,
                pw,
            ))),
        }
    }
}
