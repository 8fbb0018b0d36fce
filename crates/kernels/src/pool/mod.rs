//! A faster max pool over non-overlapping windows for the pure-Rust backend (burn-flex),
//! with its own gradient; other backends run Burn's `max_pool2d` unchanged.
//!
//! burn-flex 0.22 pools through its general 3-D max pool, which spends most of its time
//! working out window bounds: a 2x2 pool of the face network's first feature maps (32
//! images, 16 channels, 56x46) took 3.7 ms, and the speech CNN's two `[1, 2]` pools took
//! about half of a batch's inference time (release build). [`kernel`] pools each plane
//! directly. [`max_pool2d`] routes a `MaxPool2d` layer through it when its stride equals its
//! window, without padding, dilation or ceil mode: the layers profundo's networks use.

// burn-ndarray is deprecated upstream but still a backend profundo offers, so it needs an impl.
#![allow(deprecated)]

pub mod kernel;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, NdArray, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, Tensor};

use kernel::PoolShape;

/// A max pool over non-overlapping `[kh, kw]` windows (stride = window, no padding), as a
/// backend operation.
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait WindowMaxPool: Backend {
    /// The maximum of every whole `[kh, kw]` window of `x` (`[batch, channels, h, w]`):
    /// `[batch, channels, h / kh, w / kw]`.
    fn max_pool2d_windows(x: FloatTensor<Self>, kh: usize, kw: usize) -> FloatTensor<Self> {
        burn_pool::<Self>(x, kh, kw)
    }
}

/// Burn's own max pool over non-overlapping `[kh, kw]` windows, on any backend (the default
/// of [`WindowMaxPool::max_pool2d_windows`], and its fallback where [`kernel`] does not
/// apply).
fn burn_pool<B: Backend>(x: FloatTensor<B>, kh: usize, kw: usize) -> FloatTensor<B> {
    B::max_pool2d(x, [kh, kw], [kh, kw], [0, 0], [1, 1], false)
}

impl WindowMaxPool for NdArray {}

#[cfg(feature = "tch")]
impl WindowMaxPool for burn::backend::LibTorch {}

impl<C: CheckpointStrategy> WindowMaxPool for Autodiff<NdArray, C> {}

#[cfg(feature = "tch")]
impl<C: CheckpointStrategy> WindowMaxPool for Autodiff<burn::backend::LibTorch, C> {}

/// The sizes of a flex pool and its output shape, or `None` where [`kernel`] does not apply
/// (a dtype other than `f32`, or a window larger than the input).
fn flex_shape(x: &FloatTensor<Flex>, kh: usize, kw: usize) -> Option<(PoolShape, [usize; 4])> {
    let xs = x.layout().shape();
    if x.dtype() != DType::F32 || xs.len() != 4 {
        return None;
    }
    let s = PoolShape {
        planes: xs[0] * xs[1],
        h: xs[2],
        w: xs[3],
        kh,
        kw,
    };
    s.is_valid()
        .then_some((s, [xs[0], xs[1], s.out_h(), s.out_w()]))
}

impl WindowMaxPool for Flex {
    fn max_pool2d_windows(x: FloatTensor<Self>, kh: usize, kw: usize) -> FloatTensor<Self> {
        match flex_shape(&x, kh, kw) {
            Some((s, out)) => {
                crate::kernel_calls::record();
                crate::flex::from_vec(kernel::forward(&s, x.to_contiguous().storage::<f32>()), out)
            }
            None => burn_pool::<Self>(x, kh, kw),
        }
    }
}

/// The backward step of [`WindowMaxPool`] on flex: [`kernel::backward`].
#[derive(Debug)]
struct FlexPoolBackward;

impl Backward<Flex, 1> for FlexPoolBackward {
    /// Where each maximum sat, the sizes, and the input's shape.
    type State = (Vec<u32>, PoolShape, [usize; 4]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (argmax, s, shape) = ops.state;
        if let Some(node) = node_x {
            let dx = kernel::backward(&s, &argmax, grad.storage::<f32>());
            grads.register::<Flex>(node.id, crate::flex::from_vec(dx, shape));
        }
    }
}

impl<C: CheckpointStrategy> WindowMaxPool for Autodiff<Flex, C> {
    fn max_pool2d_windows(x: FloatTensor<Self>, kh: usize, kw: usize) -> FloatTensor<Self> {
        let Some((s, out)) = flex_shape(x.primitive(), kh, kw) else {
            return burn_pool::<Self>(x, kh, kw);
        };
        crate::kernel_calls::record();
        let input = x.primitive().to_contiguous();
        let values = input.storage::<f32>();
        match FlexPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, argmax) = kernel::forward_with_argmax(&s, values);
                let in_shape = [out[0], out[1], s.h, s.w];
                prep.finish((argmax, s, in_shape), crate::flex::from_vec(y, out))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(crate::flex::from_vec(kernel::forward(&s, values), out))
            }
        }
    }
}

/// The window of `pool`, if [`max_pool2d`] can run it: stride equal to the window, no
/// padding, dilation 1, no ceil mode.
fn window(pool: &MaxPool2d) -> Option<[usize; 2]> {
    let unpadded = match pool.padding {
        PaddingConfig2d::Valid => true,
        PaddingConfig2d::Explicit(top, left, bottom, right) => top + left + bottom + right == 0,
        _ => false,
    };
    (unpadded && pool.stride == pool.kernel_size && pool.dilation == [1, 1] && !pool.ceil_mode)
        .then_some(pool.kernel_size)
}

/// `pool.forward(x)`, through [`WindowMaxPool`] when the layer's stride equals its window,
/// without padding, dilation or ceil mode (on flex: [`kernel`]); otherwise Burn's layer.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    match window(pool) {
        Some([kh, kw]) => Tensor::from_dispatch(<Dispatch as WindowMaxPool>::max_pool2d_windows(
            x.into_dispatch(),
            kh,
            kw,
        )),
        None => pool.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("f32")
    }

    /// On every CPU backend, the routed layer gives Burn's own layer's outputs and input
    /// gradient (odd sizes drop the trailing row / column, as Burn does).
    #[test]
    fn matches_burns_max_pool_forward_and_gradient() {
        for device in [Device::flex(), Device::ndarray()] {
            for (window, shape) in [
                ([2, 2], [3, 4, 7, 9]),
                ([1, 2], [5, 6, 1, 11]),
                ([3, 3], [2, 2, 9, 10]),
            ] {
                let pool = MaxPool2dConfig::new(window).with_strides(window).init();
                let ad = device.clone().autodiff();
                let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &ad);
                let weights: Tensor<4> = Tensor::random(
                    pool.forward(x.clone()).dims(),
                    Distribution::Normal(0.0, 1.0),
                    &ad,
                );
                let mut grads = Vec::new();
                let mut outputs = Vec::new();
                for routed in [true, false] {
                    let x = x.clone().detach().require_grad();
                    let y = if routed {
                        max_pool2d(&pool, x.clone())
                    } else {
                        pool.forward(x.clone())
                    };
                    outputs.push(values(y.clone().detach()));
                    let g = (y * weights.clone()).sum().backward();
                    grads.push(values(x.grad(&g).expect("input gradient")));
                }
                assert_eq!(outputs[0], outputs[1], "{window:?} {shape:?}");
                assert_eq!(grads[0], grads[1], "{window:?} {shape:?}");
                // Without autodiff too.
                let plain: Tensor<4> =
                    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
                assert_eq!(
                    values(max_pool2d(&pool, plain.clone())),
                    values(pool.forward(plain))
                );
            }
        }
    }

    /// On flex the routed layer runs [`kernel`], with and without autodiff (the comparison
    /// with Burn above would also pass if routing silently fell back to Burn's pool, which
    /// gives the same values).
    #[test]
    fn flex_layers_run_the_kernel() {
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x: Tensor<4> =
                Tensor::random([2, 3, 6, 5], Distribution::Normal(0.0, 1.0), &device);
            let before = crate::kernel_calls::count();
            let y = max_pool2d(&pool, x);
            assert_eq!(y.dims(), [2, 3, 3, 2]);
            assert_eq!(crate::kernel_calls::count(), before + 1, "{device:?}");
        }
        // And Burn's own layer does not.
        let before = crate::kernel_calls::count();
        let x: Tensor<4> = Tensor::random(
            [2, 3, 6, 5],
            Distribution::Normal(0.0, 1.0),
            &Device::flex(),
        );
        let _ = pool.forward(x);
        assert_eq!(crate::kernel_calls::count(), before);
    }

    /// Overlapping, padded or ceil-mode pools keep Burn's layer.
    #[test]
    fn other_pools_fall_back_to_burn() {
        let overlapping = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
        let padded = MaxPool2dConfig::new([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let ceil = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
        for pool in [&overlapping, &padded, &ceil] {
            assert!(window(pool).is_none());
        }
        let device = Device::flex();
        let x: Tensor<4> = Tensor::random([1, 2, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(
            values(max_pool2d(&overlapping, x.clone())),
            values(overlapping.forward(x))
        );
    }
}
