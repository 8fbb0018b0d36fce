//! LibTorch's own autograd inside a Burn backward step (the `tch` feature).
//!
//! Burn 0.22 differentiates LibTorch operations with its own decompositions (a convolution's
//! weight gradient as another convolution, batch norm as a dozen tensor operations), and
//! tch 0.22 does not expose LibTorch's fused backward functions (`convolution_backward`,
//! `native_batch_norm_backward`). So an operation runs its forward pass on leaves that
//! LibTorch's autograd tracks ([`record`]), and its Burn backward step asks LibTorch for the
//! vector-Jacobian product ([`LibTorchAutograd`]), which runs those fused functions.

// burn-tch is deprecated upstream but still the LibTorch backend profundo offers.
#![allow(deprecated)]

use burn::backend::LibTorch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::libtorch::TchTensor;

/// A forward pass LibTorch's autograd recorded: its output and the leaves (the operation's
/// inputs, in the order of its Burn parents).
#[derive(Debug, Clone)]
pub(crate) struct Recorded<const N: usize> {
    output: TchTensor,
    leaves: [TchTensor; N],
}

/// Runs `f` on autograd leaves sharing the storage of `inputs`. Returns what the backward
/// step needs, the output's value (detached, for Burn), and whatever else `f` returns.
pub(crate) fn record<const N: usize, T>(
    inputs: [&TchTensor; N],
    f: impl FnOnce(&[tch::Tensor; N]) -> (tch::Tensor, T),
) -> (Recorded<N>, TchTensor, T) {
    let leaves: [tch::Tensor; N] =
        std::array::from_fn(|i| inputs[i].tensor.detach().set_requires_grad(true));
    let (output, extra) = f(&leaves);
    let value = TchTensor::new(output.detach());
    let recorded = Recorded {
        output: TchTensor::new(output),
        leaves: leaves.map(TchTensor::new),
    };
    (recorded, value, extra)
}

/// The Burn backward step of a [`record`]ed operation with `N` parents.
#[derive(Debug)]
pub(crate) struct LibTorchAutograd<const N: usize>;

impl<const N: usize> Backward<LibTorch, N> for LibTorchAutograd<N> {
    type State = Recorded<N>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let Recorded { output, leaves } = ops.state;
        let wanted: Vec<usize> = (0..N).filter(|&i| ops.parents[i].is_some()).collect();
        if wanted.is_empty() {
            return;
        }
        // d(output . grad) / d(leaf) is the vector-Jacobian product with `grad` (tch's
        // `run_backward` takes no output gradient); one dot product of the flattened tensors
        // costs LibTorch fewer calls than a product and a sum.
        let objective = output
            .tensor
            .reshape([-1])
            .dot(&grad.tensor.detach().reshape([-1]));
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|&i| &leaves[i].tensor).collect();
        let computed = tch::Tensor::run_backward(&[objective], &inputs, false, false);
        for (&i, g) in wanted.iter().zip(computed) {
            if let Some(node) = &ops.parents[i] {
                grads.register::<LibTorch>(node.id, TchTensor::new(g));
            }
        }
    }
}
