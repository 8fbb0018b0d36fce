//! [`FusedBatchNorm`] on LibTorch: one `native_batch_norm` call where Burn's default runs
//! about a dozen tensor operations (two transposed copies among them), and in training the
//! gradients from LibTorch's own autograd ([`crate::libtorch_autograd`]), which runs
//! `native_batch_norm_backward`.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, LibTorch};

use super::FusedBatchNorm;
use crate::libtorch_autograd::{LibTorchAutograd, record};

/// LibTorch's training batch norm: `(output, mean, biased variance)`.
pub(crate) fn train(
    x: &tch::Tensor,
    gamma: &tch::Tensor,
    beta: &tch::Tensor,
    eps: f64,
) -> [tch::Tensor; 3] {
    let (out, mean, inv_std) = x.native_batch_norm(
        Some(gamma),
        Some(beta),
        None::<&tch::Tensor>,
        None::<&tch::Tensor>,
        true,
        0.0,
        eps,
    );
    // LibTorch returns 1 / sqrt(var + eps); Burn's contract is the variance itself.
    let var = inv_std.detach().pow_tensor_scalar(-2.0) - eps;
    [out, mean.detach(), var]
}

/// The running statistics blended with the batch's as Burn's `BatchNorm` does, as new
/// tensors (autograd saved the batch mean for the backward step, so nothing here may
/// change it in place).
pub(crate) fn blend(
    running: [&TchTensor; 2],
    batch: [tch::Tensor; 2],
    momentum: f64,
) -> [TchTensor; 2] {
    let [mean, var] = batch;
    [(running[0], mean), (running[1], var)]
        .map(|(r, b)| TchTensor::new(r.tensor.detach() * (1.0 - momentum) + b * momentum))
}

impl FusedBatchNorm for LibTorch {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        momentum: f64,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [out, mean, var] = train(&x.tensor, &gamma.tensor, &beta.tensor, epsilon);
        let [mean, var] = blend([&running_mean, &running_var], [mean, var], momentum);
        (TchTensor::new(out), mean, var)
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        TchTensor::new(x.tensor.batch_norm(
            Some(&gamma.tensor),
            Some(&beta.tensor),
            Some(&mean.tensor),
            Some(&variance.tensor),
            false,
            0.0,
            epsilon,
            false,
        ))
    }
}

impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<LibTorch, C> {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        momentum: f64,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = LibTorchAutograd::<3>
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let inputs = [x.primitive(), gamma.primitive(), beta.primitive()];
        let (output, stats) = match prep {
            OpsKind::Tracked(prep) => {
                let (state, value, stats) = record(inputs, |[x, gamma, beta]| {
                    let [out, mean, var] = train(x, gamma, beta, epsilon);
                    (out, [mean, var])
                });
                (prep.finish(state, value), stats)
            }
            OpsKind::UnTracked(prep) => {
                let [x, gamma, beta] = inputs.map(|t| &t.tensor);
                let [out, mean, var] = train(x, gamma, beta, epsilon);
                (prep.finish(TchTensor::new(out)), [mean, var])
            }
        };
        let running = [running_mean.primitive(), running_var.primitive()];
        // The running statistics are constants of the graph, as in Burn's own batch norm.
        let [mean, var] = blend(running, stats, momentum).map(<FloatTensor<Self>>::new);
        (output, mean, var)
    }
}
