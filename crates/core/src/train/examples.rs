//! Training examples in memory and how the loop batches them.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::augment::Augmenter;
use crate::model::NormStats;

/// Training examples in memory: `n` items of `shape = [channels, rows, cols]` each.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a> {
    /// Concatenated item values, `n * channels * rows * cols`.
    pub x: &'a [f32],
    /// Shape of one item.
    pub shape: [usize; 3],
    /// Class index of each item.
    pub labels: &'a [usize],
    /// Group index of each item (its speaker), for batch norm per group
    /// ([`crate::model::BatchNormScope::Group`]): every training batch then holds one
    /// group's items, and evaluation passes each group's items as one batch normalised
    /// with their own statistics. `None`: batches mix groups, evaluation uses the running
    /// statistics.
    pub groups: Option<&'a [usize]>,
}

impl Examples<'_> {
    pub(crate) fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// A batch tensor of the items at `idx`, optionally augmented.
    pub(crate) fn batch(
        &self,
        idx: &[usize],
        device: &Device,
        augment: Option<(&dyn Augmenter, &mut StdRng)>,
    ) -> Tensor<4> {
        let len = self.item_len();
        let mut buf = Vec::with_capacity(idx.len() * len);
        for &i in idx {
            buf.extend_from_slice(&self.x[i * len..(i + 1) * len]);
        }
        if let Some((cfg, rng)) = augment {
            for item in buf.chunks_mut(len) {
                cfg.apply(item, self.shape, rng);
            }
        }
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(buf, [idx.len(), c, h, w]), device)
    }

    pub(crate) fn targets(&self, idx: &[usize], device: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        Tensor::from_data(TensorData::new(t, [idx.len()]), device)
    }

    /// How many training batches an epoch over `train` has ([`Self::training_batches`]).
    pub(crate) fn batch_count(&self, train: &[usize], batch_size: usize) -> usize {
        match self.groups {
            None => train.len().div_ceil(batch_size),
            Some(groups) => group_items(train, groups)
                .iter()
                .map(|items| items.len().div_ceil(batch_size))
                .sum(),
        }
    }

    /// One epoch's training batches of `order` (already shuffled): consecutive chunks of
    /// `batch_size`, or with groups, each group's items in order chunked on their own and
    /// the chunks shuffled.
    pub(crate) fn training_batches(
        &self,
        order: &[usize],
        batch_size: usize,
        rng: &mut StdRng,
    ) -> Vec<Vec<usize>> {
        let Some(groups) = self.groups else {
            return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        };
        let mut batches: Vec<Vec<usize>> = group_items(order, groups)
            .iter()
            .flat_map(|items| items.chunks(batch_size).map(<[usize]>::to_vec))
            .collect();
        batches.shuffle(rng);
        batches
    }

    /// How evaluation passes `idx` through batch norm: one pass per chunk of `batch_size`
    /// with the running statistics, or one pass per group with its own statistics
    /// ([`NormStats::for_group`]). Each pass: its positions in `idx`, its items, the stats.
    pub(crate) fn evaluation_batches(
        &self,
        idx: &[usize],
        batch_size: usize,
    ) -> Vec<(Vec<usize>, Vec<usize>, NormStats)> {
        let positions: Vec<usize> = (0..idx.len()).collect();
        let passes: Vec<(Vec<usize>, NormStats)> = match self.groups {
            None => positions
                .chunks(batch_size.max(1))
                .map(|c| (c.to_vec(), NormStats::Running))
                .collect(),
            Some(groups) => {
                let of_position: Vec<usize> = idx.iter().map(|&i| groups[i]).collect();
                group_items(&positions, &of_position)
                    .into_iter()
                    .map(|g| {
                        let stats = NormStats::for_group(g.len());
                        (g, stats)
                    })
                    .collect()
            }
        };
        passes
            .into_iter()
            .map(|(pos, stats)| {
                let items = pos.iter().map(|&k| idx[k]).collect();
                (pos, items, stats)
            })
            .collect()
    }
}

/// The entries of `idx` split by their group `groups[i]`, groups in order of first
/// appearance, each keeping `idx`'s order.
fn group_items(idx: &[usize], groups: &[usize]) -> Vec<Vec<usize>> {
    let mut slot: HashMap<usize, usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in idx {
        let k = *slot.entry(groups[i]).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[k].push(i);
    }
    out
}
