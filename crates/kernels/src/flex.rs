//! Small conversions between burn-flex tensors and the `f32` slices profundo's own kernels
//! ([`crate::conv`], [`crate::pool`], [`crate::norm`]) work on.

use burn::backend::Flex;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::TensorData;

/// A flex tensor of `shape` holding `values` (row-major).
pub(crate) fn from_vec(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape.into()), &Default::default())
}
