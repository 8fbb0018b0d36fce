//! Convolution, batch norm and ReLU, the block every conv network here repeats.
//!
//! On LibTorch, training, the three run as one operation that LibTorch's autograd records
//! ([`crate::libtorch_autograd`]): one set of leaves and one vector-Jacobian product for the
//! block instead of one per layer. Everywhere else, [`conv_norm_relu`] is
//! [`conv::conv2d`], [`norm::batch_norm`] and [`activation::relu`] in turn.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::{activation, conv, norm};

/// `relu(norm(conv(x)))` (without the ReLU if `relu` is false), with the batch norm's
/// running statistics updated in training as [`norm::batch_norm`] does.
pub fn conv_norm_relu(conv: &Conv2d, norm: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    #[cfg(feature = "tch")]
    if let Some(y) = libtorch::fused(conv, norm, &x, relu) {
        return y;
    }
    let y = norm::batch_norm(norm, conv::conv2d(conv, x));
    if relu { activation::relu(y) } else { y }
}

#[cfg(feature = "tch")]
mod libtorch {
    // burn-tch is deprecated upstream but still the LibTorch backend profundo offers.
    #![allow(deprecated)]

    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::ops::{Backward, OpsKind};
    use burn::backend::libtorch::TchTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Dispatch, LibTorch, backend_extension};
    use burn::nn::BatchNorm;
    use burn::nn::conv::Conv2d;
    use burn::tensor::Tensor;

    use crate::conv::libtorch::conv;
    use crate::libtorch_autograd::{LibTorchAutograd, record};
    use crate::norm;
    use crate::norm::libtorch::{blend, train};

    /// The block's training pass as one LibTorch operation.
    #[backend_extension(LibTorch: cfg(feature = "tch"), Autodiff)]
    pub trait ConvNormRelu: burn::backend::Backend {
        /// `(output, new running mean, new running variance)`.
        #[allow(clippy::too_many_arguments)]
        fn conv_norm_relu_train(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            running_mean: FloatTensor<Self>,
            running_var: FloatTensor<Self>,
            padding: [usize; 2],
            relu: bool,
            momentum: f64,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    /// The block on tensors LibTorch's autograd may be recording.
    fn forward(
        [x, w, gamma, beta]: &[tch::Tensor; 4],
        [ph, pw]: [usize; 2],
        relu: bool,
        eps: f64,
    ) -> (tch::Tensor, [tch::Tensor; 2]) {
        let [out, mean, var] = train(&conv(x, w, ph, pw), gamma, beta, eps);
        (if relu { out.relu() } else { out }, [mean, var])
    }

    impl ConvNormRelu for LibTorch {
        fn conv_norm_relu_train(
            x: TchTensor,
            weight: TchTensor,
            gamma: TchTensor,
            beta: TchTensor,
            running_mean: TchTensor,
            running_var: TchTensor,
            padding: [usize; 2],
            relu: bool,
            momentum: f64,
            epsilon: f64,
        ) -> (TchTensor, TchTensor, TchTensor) {
            let inputs = [x, weight, gamma, beta].map(|t| t.tensor);
            let (out, stats) = forward(&inputs, padding, relu, epsilon);
            let [mean, var] = blend([&running_mean, &running_var], stats, momentum);
            (TchTensor::new(out), mean, var)
        }
    }

    impl<C: CheckpointStrategy> ConvNormRelu for Autodiff<LibTorch, C> {
        fn conv_norm_relu_train(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            running_mean: FloatTensor<Self>,
            running_var: FloatTensor<Self>,
            padding: [usize; 2],
            relu: bool,
            momentum: f64,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let prep = LibTorchAutograd::<4>
                .prepare::<C>([x.node(), weight.node(), gamma.node(), beta.node()])
                .compute_bound()
                .stateful();
            let inputs = [
                x.primitive(),
                weight.primitive(),
                gamma.primitive(),
                beta.primitive(),
            ];
            let (output, stats) = match prep {
                OpsKind::Tracked(prep) => {
                    let (state, value, stats) =
                        record(inputs, |leaves| forward(leaves, padding, relu, epsilon));
                    (prep.finish(state, value), stats)
                }
                OpsKind::UnTracked(prep) => {
                    let plain = inputs.map(|t| t.tensor.shallow_clone());
                    let (out, stats) = forward(&plain, padding, relu, epsilon);
                    (prep.finish(TchTensor::new(out)), stats)
                }
            };
            let running = [running_mean.primitive(), running_var.primitive()];
            // The running statistics are constants of the graph, as in Burn's batch norm.
            let [mean, var] = blend(running, stats, momentum).map(<FloatTensor<Self>>::new);
            (output, mean, var)
        }
    }

    /// The fused block, where it applies: training on LibTorch with autodiff, a layer
    /// [`crate::conv::conv2d`] can run, and batch norm in training mode.
    pub(super) fn fused(
        conv: &Conv2d,
        norm: &BatchNorm,
        x: &Tensor<4>,
        relu: bool,
    ) -> Option<Tensor<4>> {
        let device = x.device();
        if !(crate::conv::is_libtorch(&device) && norm::trains(norm, &device)) {
            return None;
        }
        let (ph, pw) = crate::conv::stride_one_padding(conv)?;
        let [running_mean, running_var] = norm::running_stats(norm, &device);
        let (y, mean, var) = <Dispatch as ConvNormRelu>::conv_norm_relu_train(
            x.clone().into_dispatch(),
            conv.weight.val().into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            running_mean,
            running_var,
            [ph, pw],
            relu,
            norm.momentum,
            norm.epsilon,
        );
        norm::update_running_stats(norm, mean, var);
        Some(Tensor::from_dispatch(y))
    }
}
