//! A faster stride-1 2-D convolution for the pure-Rust backend (burn-flex), with its own
//! gradients; other backends run Burn's `conv2d` unchanged.
//!
//! burn-flex 0.22 lowers a convolution to im2col tiles of 512 output pixels, each an element-by-
//! element gather from a channels-last copy made on one thread, and its gradients to further
//! convolutions; the face network's training step spent most of its time there. [`kernel`]
//! does one im2col and one matrix product per image in NCHW, and the gradients as two more
//! products per image. [`conv2d`] routes a `Conv2d` layer through it when the layer is
//! stride 1, dilation 1, one group, without bias, with symmetric padding; the layer's weights
//! are the same `Conv2d` parameters, so model files do not change.

// burn-ndarray is deprecated upstream but still a backend profundo offers, so it needs an impl.
#![allow(deprecated)]

pub mod kernel;
#[cfg(feature = "tch")]
pub(crate) mod libtorch;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, DispatchDevice, Flex, NdArray, backend_extension,
};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Device, Tensor};

use kernel::ConvShape;

/// Burn's options for a stride-1, dilation-1, single-group convolution with padding `(ph, pw)`.
fn stride_one(ph: usize, pw: usize) -> ConvOptions<2> {
    ConvOptions::new([1, 1], [ph, pw], [1, 1], 1)
}

/// A stride-1, dilation-1, single-group convolution without bias, as a backend operation.
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait StrideOneConv: Backend {
    /// `x` `[batch, c_in, h, w]` convolved with `weight` `[c_out, c_in, kh, kw]`, with `ph`
    /// zero rows above and below and `pw` zero columns left and right.
    fn conv2d_stride_one(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        ph: usize,
        pw: usize,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, stride_one(ph, pw))
    }
}

impl StrideOneConv for NdArray {}

#[cfg(feature = "tch")]
impl StrideOneConv for burn::backend::LibTorch {}

impl<C: CheckpointStrategy> StrideOneConv for Autodiff<NdArray, C> {}

/// The sizes of a flex convolution, or `None` where [`kernel`] does not apply (a dtype other
/// than `f32`, or a kernel larger than the padded input).
fn flex_shape(
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    ph: usize,
    pw: usize,
) -> Option<ConvShape> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return None;
    }
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.len() != 4 || ws.len() != 4 || xs[1] != ws[1] {
        return None;
    }
    let shape = ConvShape {
        batch: xs[0],
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
        kh: ws[2],
        kw: ws[3],
        ph,
        pw,
    };
    shape.is_valid().then_some(shape)
}

/// The forward pass on flex; `x` and `weight` must be contiguous (`to_contiguous`: a
/// no-op for a tensor that already is).
fn flex_forward(
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    s: &ConvShape,
) -> FloatTensor<Flex> {
    let out = kernel::forward(s, x.storage::<f32>(), weight.storage::<f32>());
    crate::flex::from_vec(out, [s.batch, s.c_out, s.out_h(), s.out_w()])
}

impl StrideOneConv for Flex {
    fn conv2d_stride_one(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        ph: usize,
        pw: usize,
    ) -> FloatTensor<Self> {
        match flex_shape(&x, &weight, ph, pw) {
            Some(s) => flex_forward(&x.to_contiguous(), &weight.to_contiguous(), &s),
            None => Self::conv2d(x, weight, None, stride_one(ph, pw)),
        }
    }
}

/// The backward step of [`StrideOneConv`] on flex: both gradients by [`kernel`].
#[derive(Debug)]
struct FlexConvBackward;

impl Backward<Flex, 2> for FlexConvBackward {
    type State = (FloatTensor<Flex>, FloatTensor<Flex>, ConvShape);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x, weight, s) = ops.state;
        let g = grad.storage::<f32>();
        if let Some(node) = node_x {
            let dx = kernel::backward_x(&s, weight.storage::<f32>(), g);
            grads.register::<Flex>(
                node.id,
                crate::flex::from_vec(dx, [s.batch, s.c_in, s.h, s.w]),
            );
        }
        if let Some(node) = node_w {
            let dw = kernel::backward_weight(&s, x.storage::<f32>(), g);
            grads.register::<Flex>(
                node.id,
                crate::flex::from_vec(dw, [s.c_out, s.c_in, s.kh, s.kw]),
            );
        }
    }
}

impl<C: CheckpointStrategy> StrideOneConv for Autodiff<Flex, C> {
    fn conv2d_stride_one(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        ph: usize,
        pw: usize,
    ) -> FloatTensor<Self> {
        let Some(s) = flex_shape(x.primitive(), weight.primitive(), ph, pw) else {
            return Self::conv2d(x, weight, None, stride_one(ph, pw));
        };
        match FlexConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                // Kept contiguous for the backward step, which reads their storage.
                let xv = x.primitive().to_contiguous();
                let wv = weight.primitive().to_contiguous();
                let out = flex_forward(&xv, &wv, &s);
                prep.finish((xv, wv, s), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(
                &x.primitive().to_contiguous(),
                &weight.primitive().to_contiguous(),
                &s,
            )),
        }
    }
}

/// Whether `device` is burn-flex, with or without autodiff: where [`conv2d`] runs [`kernel`].
pub fn is_flex(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}

/// Whether [`conv2d`] runs its own path on `device` rather than Burn's default: [`kernel`]
/// on flex, and LibTorch's convolution with LibTorch's gradients on LibTorch.
pub fn has_own_path(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    if is_libtorch(device) {
        return true;
    }
    is_flex(device)
}

/// Whether `device` is LibTorch, with or without autodiff.
#[cfg(feature = "tch")]
pub(crate) fn is_libtorch(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::LibTorch(_)
    )
}

/// The symmetric padding `(rows, columns)` of `conv`, if [`conv2d`] can run it.
pub(crate) fn stride_one_padding(conv: &Conv2d) -> Option<(usize, usize)> {
    if conv.stride != [1, 1] || conv.dilation != [1, 1] || conv.groups != 1 || conv.bias.is_some() {
        return None;
    }
    match conv.padding {
        PaddingConfig2d::Valid => Some((0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some((top, left))
        }
        PaddingConfig2d::Same if conv.kernel_size[0] % 2 == 1 && conv.kernel_size[1] % 2 == 1 => {
            Some((conv.kernel_size[0] / 2, conv.kernel_size[1] / 2))
        }
        _ => None,
    }
}

/// `conv.forward(x)`, through [`StrideOneConv`] when the layer is stride 1, dilation 1, one
/// group, without bias, with symmetric padding (on flex: [`kernel`]); otherwise Burn's layer.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match stride_one_padding(conv) {
        Some((ph, pw)) => Tensor::from_dispatch(<Dispatch as StrideOneConv>::conv2d_stride_one(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            ph,
            pw,
        )),
        None => conv.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    fn layer(kernel: [usize; 2], padding: PaddingConfig2d, device: &Device) -> Conv2d {
        Conv2dConfig::new([3, 5], kernel)
            .with_padding(padding)
            .with_bias(false)
            .init(device)
    }

    fn assert_close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        let a = a.into_data().to_vec::<f32>().expect("f32");
        let b = b.into_data().to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    fn cases() -> Vec<([usize; 2], PaddingConfig2d)> {
        vec![
            ([3, 3], PaddingConfig2d::Explicit(1, 1, 1, 1)),
            ([1, 1], PaddingConfig2d::Valid),
            ([3, 3], PaddingConfig2d::Same),
            ([3, 2], PaddingConfig2d::Valid),
        ]
    }

    /// On every CPU backend, the routed layer gives Burn's own layer's outputs and gradients.
    #[test]
    fn matches_burns_conv2d_forward_and_gradients() {
        for device in [Device::flex(), Device::ndarray()] {
            for (kernel, padding) in cases() {
                let ad = device.clone().autodiff();
                let conv = layer(kernel, padding.clone(), &ad);
                assert!(
                    stride_one_padding(&conv).is_some(),
                    "{kernel:?} {padding:?}"
                );
                let x = Tensor::<4>::random([2, 3, 7, 6], Distribution::Normal(0.0, 1.0), &ad);
                let what = format!("{device:?} {kernel:?} {padding:?}");

                let x1 = x.clone().require_grad();
                let ours = conv2d(&conv, x1.clone());
                let x2 = x.require_grad();
                let burns = conv.forward(x2.clone());
                assert_close(ours.clone(), burns.clone(), &format!("forward {what}"));

                // A loss that weights every output differently, so each gradient entry is tested.
                let dims = ours.dims();
                let weights = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &ad);
                let g1 = (ours * weights.clone()).sum().backward();
                let g2 = (burns * weights).sum().backward();
                assert_close(
                    x1.grad(&g1).expect("x grad"),
                    x2.grad(&g2).expect("x grad"),
                    &format!("input gradient {what}"),
                );
                assert_close(
                    conv.weight.val().grad(&g1).expect("w grad"),
                    conv.weight.val().grad(&g2).expect("w grad"),
                    &format!("weight gradient {what}"),
                );
            }
        }
    }

    /// On flex, with and without autodiff, the routed layer is the kernel's output bit for
    /// bit: the comparisons with Burn above would pass even if routing fell back to Burn.
    #[test]
    fn flex_layers_run_the_kernel() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let conv = layer([3, 3], PaddingConfig2d::Explicit(1, 1, 1, 1), &device);
            let x = Tensor::<4>::random([2, 3, 7, 6], Distribution::Normal(0.0, 1.0), &device);
            let s = ConvShape {
                batch: 2,
                c_in: 3,
                h: 7,
                w: 6,
                c_out: 5,
                kh: 3,
                kw: 3,
                ph: 1,
                pw: 1,
            };
            let want = kernel::forward(
                &s,
                &x.clone().into_data().to_vec::<f32>().expect("f32"),
                &conv.weight.val().into_data().to_vec::<f32>().expect("f32"),
            );
            let got = conv2d(&conv, x).into_data().to_vec::<f32>().expect("f32");
            assert_eq!(got, want, "{device:?}");
        }
    }

    /// Without autodiff, and on layers it cannot run (stride 2), the routed layer is Burn's.
    #[test]
    fn inference_and_unsupported_layers_match_burn() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 7, 6], Distribution::Normal(0.0, 1.0), &device);
        let conv = layer([3, 3], PaddingConfig2d::Explicit(1, 1, 1, 1), &device);
        assert_close(
            conv2d(&conv, x.clone()),
            conv.forward(x.clone()),
            "inference",
        );
        let strided = Conv2dConfig::new([3, 5], [3, 3])
            .with_stride([2, 2])
            .with_bias(false)
            .init(&device);
        assert!(stride_one_padding(&strided).is_none());
        assert!(is_flex(&device) && is_flex(&device.clone().autodiff()));
        assert!(!is_flex(&Device::ndarray()) && !is_flex(&Device::ndarray().autodiff()));
        assert_close(conv2d(&strided, x.clone()), strided.forward(x), "stride 2");
    }
}
