//! Batch normalisation for the pure-Rust backend (burn-flex) in one pass per statistic,
//! with its own gradients; on LibTorch, LibTorch's own batch norm and its gradients
//! ([`libtorch`](self), with the `tch` feature); ndarray keeps Burn's operations.
//!
//! burn-flex 0.22 has no batch-norm kernel: Burn's default `batch_norm_train` transposes the
//! input to `[channels, rest]` twice (a copy each time) to take the mean and variance, its
//! backward transposes twice more, and the normalisation itself is four elementwise passes.
//! [`kernel`] reads each item's channel as one contiguous run instead. [`batch_norm`] runs a
//! `BatchNorm` layer through it and updates the running statistics as Burn's layer does, so
//! the layer's weights and model files do not change.

// burn-ndarray is deprecated upstream but still a backend profundo offers, so it needs an impl.
#![allow(deprecated)]

pub mod kernel;
#[cfg(feature = "tch")]
pub(crate) mod libtorch;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, NdArray, Scalar, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Device, Tensor};

use kernel::NormShape;

/// Batch normalisation as backend operations: training (the batch's statistics) and
/// inference (given statistics).
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait FusedBatchNorm: Backend {
    /// `x` (`[batch, channels, ...]`) normalised with its own per-channel mean and biased
    /// variance, scaled by `gamma` and shifted by `beta`; the running statistics blended
    /// with the batch's as Burn's `BatchNorm` does (`running * (1 - momentum) + batch *
    /// momentum`). Returns `(output, new running mean, new running variance)`, the latter
    /// two constants of the graph.
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        momentum: f64,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_train::<Self>(
            x,
            gamma,
            beta,
            [running_mean, running_var],
            momentum,
            epsilon,
        )
    }

    /// `x` normalised with the given per-channel `mean` and `variance`, scaled and shifted.
    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::batch_norm(x, gamma, beta, mean, variance, epsilon)
    }
}

/// The trained batch norm with Burn's own operations, on any backend (the default of
/// [`FusedBatchNorm::batch_norm_train_fused`], and its fallback where a kernel does not
/// apply).
fn burn_train<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    [running_mean, running_var]: [FloatTensor<B>; 2],
    momentum: f64,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let blend = |running, batch| {
        B::float_add(
            B::float_mul_scalar(running, Scalar::Float(1.0 - momentum)),
            B::float_mul_scalar(B::float_detach(batch), Scalar::Float(momentum)),
        )
    };
    (
        r.output,
        blend(running_mean, r.mean),
        blend(running_var, r.variance),
    )
}

impl FusedBatchNorm for NdArray {}

impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<NdArray, C> {}

/// The sizes of a flex batch norm, or `None` where [`kernel`] does not apply (a dtype other
/// than `f32`, a rank under 2, or per-channel tensors of the wrong length).
fn flex_shape(x: &FloatTensor<Flex>, per_channel: &[&FloatTensor<Flex>]) -> Option<NormShape> {
    let xs = x.layout().shape();
    if x.dtype() != DType::F32 || xs.len() < 2 {
        return None;
    }
    let channels = xs[1];
    let fits = |t: &FloatTensor<Flex>| {
        t.dtype() == DType::F32 && t.layout().shape().num_elements() == channels
    };
    per_channel.iter().all(|t| fits(t)).then(|| NormShape {
        batch: xs[0],
        channels,
        spatial: xs.iter().skip(2).product(),
    })
}

/// A flex tensor's values (contiguous first if needed).
fn values(t: &FloatTensor<Flex>) -> Vec<f32> {
    t.to_contiguous().storage::<f32>().to_vec()
}

/// `running * (1 - momentum) + batch * momentum` per channel, in the order and precision of
/// Burn's `BatchNorm` (each factor rounded to `f32`).
fn blend(running: &[f32], batch: &[f32], momentum: f64) -> Vec<f32> {
    let (keep, take) = ((1.0 - momentum) as f32, momentum as f32);
    running
        .iter()
        .zip(batch)
        .map(|(&r, &b)| r * keep + b * take)
        .collect()
}

/// What the training forward pass on flex computes.
struct FlexTrain {
    /// The normalised output's values, in `x`'s layout.
    output: Vec<f32>,
    /// The batch's per-channel mean (the backward step needs it).
    mean: Vec<f32>,
    /// The batch's per-channel biased variance (the backward step needs it).
    var: Vec<f32>,
    /// The running mean and variance blended with the batch's.
    running: [FloatTensor<Flex>; 2],
}

/// The training forward pass on flex; `x` must be contiguous.
fn flex_train(
    s: &NormShape,
    x: &FloatTensor<Flex>,
    [gamma, beta]: [&[f32]; 2],
    running: [&FloatTensor<Flex>; 2],
    momentum: f64,
    eps: f64,
) -> FlexTrain {
    crate::kernel_calls::record();
    let (output, mean, var) = kernel::forward_train(s, x.storage::<f32>(), gamma, beta, eps);
    let running = [(running[0], &mean), (running[1], &var)]
        .map(|(r, b)| crate::flex::from_vec(blend(&values(r), b, momentum), [s.channels]));
    FlexTrain {
        output,
        mean,
        var,
        running,
    }
}

impl FusedBatchNorm for Flex {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        momentum: f64,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let Some(s) = flex_shape(&x, &[&gamma, &beta, &running_mean, &running_var]) else {
            let running = [running_mean, running_var];
            return burn_train::<Self>(x, gamma, beta, running, momentum, epsilon);
        };
        let shape = x.layout().shape().to_vec();
        let x = x.to_contiguous();
        let (gamma, beta) = (values(&gamma), values(&beta));
        let running = [&running_mean, &running_var];
        let t = flex_train(&s, &x, [&gamma, &beta], running, momentum, epsilon);
        let [mean, var] = t.running;
        (crate::flex::from_vec(t.output, shape), mean, var)
    }

    fn batch_norm_eval_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let Some(s) = flex_shape(&x, &[&gamma, &beta, &mean, &variance]) else {
            return Self::batch_norm(x, gamma, beta, mean, variance, epsilon);
        };
        let shape = x.layout().shape().to_vec();
        crate::kernel_calls::record();
        let y = kernel::forward_eval(
            &s,
            x.to_contiguous().storage::<f32>(),
            &values(&gamma),
            &values(&beta),
            &values(&mean),
            &values(&variance),
            epsilon,
        );
        crate::flex::from_vec(y, shape)
    }
}

/// What the backward step of the flex training pass keeps.
#[derive(Debug, Clone)]
struct NormState {
    x: FloatTensor<Flex>,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    eps: f64,
    shape: NormShape,
}

/// The backward step of the flex training pass: [`kernel::backward_train`].
#[derive(Debug)]
struct FlexNormBackward;

impl Backward<Flex, 3> for FlexNormBackward {
    type State = NormState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let st = ops.state;
        let s = st.shape;
        let (dx, dgamma, dbeta) = kernel::backward_train(
            &s,
            st.x.storage::<f32>(),
            grad.storage::<f32>(),
            &st.gamma,
            &st.mean,
            &st.var,
            st.eps,
        );
        if let Some(node) = node_x {
            let shape = st.x.layout().shape().to_vec();
            grads.register::<Flex>(node.id, crate::flex::from_vec(dx, shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, crate::flex::from_vec(dgamma, [s.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, crate::flex::from_vec(dbeta, [s.channels]));
        }
    }
}

impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<Flex, C> {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        momentum: f64,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let per_channel = [gamma.primitive(), beta.primitive()];
        let running = [running_mean.primitive(), running_var.primitive()];
        let Some(s) = flex_shape(
            x.primitive(),
            &[per_channel[0], per_channel[1], running[0], running[1]],
        ) else {
            let running = [running_mean, running_var];
            return burn_train::<Self>(x, gamma, beta, running, momentum, epsilon);
        };
        let shape = x.primitive().layout().shape().to_vec();
        let xv = x.primitive().to_contiguous();
        let (gv, bv) = (values(per_channel[0]), values(per_channel[1]));
        let t = flex_train(&s, &xv, [&gv, &bv], running, momentum, epsilon);
        let y = crate::flex::from_vec(t.output, shape);
        let output = match FlexNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = NormState {
                    x: xv,
                    gamma: gv,
                    mean: t.mean,
                    var: t.var,
                    eps: epsilon,
                    shape: s,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        // The running statistics are constants of the graph, as in Burn's own batch norm.
        let [mean, var] = t.running.map(<FloatTensor<Self>>::new);
        (output, mean, var)
    }
}

/// `norm.forward(x)` through [`FusedBatchNorm`] (on flex: [`kernel`]): on an autodiff device
/// with the layer's training enabled, the batch's statistics, and the running statistics
/// updated with the layer's momentum exactly as Burn's `BatchNorm` does; otherwise the
/// running statistics.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let gamma = norm.gamma.val().into_dispatch();
    let beta = norm.beta.val().into_dispatch();
    if !trains(norm, &device) {
        let mean = norm.running_mean.value().to_device(&device);
        let var = norm.running_var.value().to_device(&device);
        return Tensor::from_dispatch(<Dispatch as FusedBatchNorm>::batch_norm_eval_fused(
            x.into_dispatch(),
            gamma,
            beta,
            mean.into_dispatch(),
            var.into_dispatch(),
            norm.epsilon,
        ));
    }
    let [running_mean, running_var] = running_stats(norm, &device);
    let (y, running_mean, running_var) = <Dispatch as FusedBatchNorm>::batch_norm_train_fused(
        x.into_dispatch(),
        gamma,
        beta,
        running_mean,
        running_var,
        norm.momentum,
        norm.epsilon,
    );
    update_running_stats(norm, running_mean, running_var);
    Tensor::from_dispatch(y)
}

/// Whether `norm` normalises with the batch's statistics (and updates its running ones) on
/// `device`: an autodiff device with the layer's training enabled, as Burn's `BatchNorm`
/// decides.
pub(crate) fn trains(norm: &BatchNorm, device: &Device) -> bool {
    device.is_autodiff() && norm.training.is_enabled()
}

/// `norm`'s running mean and variance on `device`, as the training operations take them.
pub(crate) fn running_stats(norm: &BatchNorm, device: &Device) -> [FloatTensor<Dispatch>; 2] {
    [&norm.running_mean, &norm.running_var]
        .map(|r| r.value_sync().to_device(device).into_dispatch())
}

/// Stores the running statistics a training operation returned in `norm`.
pub(crate) fn update_running_stats(
    norm: &BatchNorm,
    mean: FloatTensor<Dispatch>,
    var: FloatTensor<Dispatch>,
) {
    let (mean, var): (Tensor<1>, Tensor<1>) =
        (Tensor::from_dispatch(mean), Tensor::from_dispatch(var));
    norm.running_mean.update(mean.detach());
    norm.running_var.update(var.detach());
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    fn values_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("f32")
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Everything Burn's layer computes, on every CPU backend: the training output, the
    /// gradients of the input, gamma and beta, the updated running statistics, and then the
    /// inference output with them; for 4-D and 2-D inputs.
    #[test]
    fn matches_burns_batch_norm_in_training_and_inference() {
        for device in [Device::flex(), Device::ndarray()] {
            for shape in [vec![4, 3, 5, 6], vec![7, 5]] {
                let ad = device.clone().autodiff();
                let gamma: Tensor<1> =
                    Tensor::random([shape[1]], Distribution::Normal(1.0, 0.5), &ad);
                let beta: Tensor<1> =
                    Tensor::random([shape[1]], Distribution::Normal(0.0, 0.5), &ad);
                let layer = || {
                    let mut l = BatchNormConfig::new(shape[1]).init(&ad);
                    l.gamma = Param::from_tensor(gamma.clone().detach().require_grad());
                    l.beta = Param::from_tensor(beta.clone().detach().require_grad());
                    l
                };
                let (ours, burns) = (layer(), layer());
                let x: Tensor<4> = Tensor::random(
                    [
                        shape[0],
                        shape[1],
                        *shape.get(2).unwrap_or(&1),
                        *shape.get(3).unwrap_or(&1),
                    ],
                    Distribution::Normal(2.0, 3.0),
                    &ad,
                );
                let w: Tensor<4> = Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &ad);
                let run = |l: &BatchNorm, routed: bool| {
                    let x = x.clone().detach().require_grad();
                    let y = if shape.len() == 4 {
                        if routed {
                            batch_norm(l, x.clone())
                        } else {
                            l.forward(x.clone())
                        }
                    } else {
                        let x2: Tensor<2> = x.clone().reshape([shape[0], shape[1]]);
                        let y = if routed {
                            batch_norm(l, x2)
                        } else {
                            l.forward(x2)
                        };
                        y.reshape(x.dims())
                    };
                    let g = (y.clone() * w.clone()).sum().backward();
                    (
                        values_of(y.detach()),
                        values_of(x.grad(&g).expect("dx")),
                        values_of(l.gamma.grad(&g).unwrap_or_else(|| {
                            panic!("dgamma routed={routed} {device:?} {shape:?}")
                        })),
                        values_of(l.beta.grad(&g).expect("dbeta")),
                    )
                };
                let (a, b) = (run(&ours, true), run(&burns, false));
                let what = format!("{device:?} {shape:?}");
                assert_close(&a.0, &b.0, &format!("output {what}"));
                assert_close(&a.1, &b.1, &format!("dx {what}"));
                assert_close(&a.2, &b.2, &format!("dgamma {what}"));
                assert_close(&a.3, &b.3, &format!("dbeta {what}"));
                for (r, q) in [
                    (ours.running_mean.value(), burns.running_mean.value()),
                    (ours.running_var.value(), burns.running_var.value()),
                ] {
                    assert_close(
                        &values_of(r),
                        &values_of(q),
                        &format!("running stats {what}"),
                    );
                }
                // Inference with the updated running statistics, without autodiff.
                let (ours, burns) = (ours.valid(), burns.valid());
                let x = x.clone().inner();
                let y = if shape.len() == 4 {
                    (
                        values_of(batch_norm(&ours, x.clone())),
                        values_of(burns.forward(x)),
                    )
                } else {
                    let x2: Tensor<2> = x.reshape([shape[0], shape[1]]);
                    (
                        values_of(batch_norm(&ours, x2.clone())),
                        values_of(burns.forward(x2)),
                    )
                };
                assert_close(&y.0, &y.1, &format!("inference {what}"));
            }
        }
    }

    /// On flex the layer runs [`kernel`] in training (with and without autodiff tracking)
    /// and inference; Burn's own layer does not (the comparison above would also pass on a
    /// silent fallback to Burn's operations).
    #[test]
    fn flex_layers_run_the_kernel() {
        let ad = Device::flex().autodiff();
        let layer = BatchNormConfig::new(3).init(&ad);
        let x: Tensor<4> = Tensor::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &ad);
        for input in [x.clone().require_grad(), x.clone()] {
            let before = crate::kernel_calls::count();
            let _ = batch_norm(&layer, input);
            assert_eq!(crate::kernel_calls::count(), before + 1);
        }
        let plain = layer.valid();
        let before = crate::kernel_calls::count();
        let _ = batch_norm(&plain, x.clone().inner());
        assert_eq!(crate::kernel_calls::count(), before + 1);
        let _ = layer.forward(x);
        assert_eq!(crate::kernel_calls::count(), before + 1);
    }
}
