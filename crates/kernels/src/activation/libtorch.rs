//! [`ReluOp`] on LibTorch: the forward pass is burn-tch's; with autodiff, the gradient is
//! LibTorch's `threshold_backward` on the saved output.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, LibTorch};

use super::ReluOp;

impl ReluOp for LibTorch {}

/// The backward step: the output gradient where the output is positive, else zero.
#[derive(Debug)]
struct ReluBackward;

impl Backward<LibTorch, 1> for ReluBackward {
    /// The forward pass's output (positive exactly where the input is).
    type State = TchTensor;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            let dx = ops.state.tensor.threshold_backward(&grad.tensor, 0.0);
            grads.register::<LibTorch>(node.id, TchTensor::new(dx));
        }
    }
}

impl<C: CheckpointStrategy> ReluOp for Autodiff<LibTorch, C> {
    fn relu_op(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                // A new tensor, not burn-tch's in-place relu: the saved output must not change.
                let out = TchTensor::new(x.primitive().tensor.relu());
                prep.finish(out.clone(), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(LibTorch::relu(x.primitive().clone())),
        }
    }
}
