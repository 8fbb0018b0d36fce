//! Batch normalisation on `f32` slices laid out `[batch, channels, spatial]` (NCHW with the
//! trailing dimensions flattened): the training forward pass with the batch's statistics,
//! its gradients, and the inference pass with given statistics.
//!
//! Every `[spatial]` run of one channel of one image is contiguous, so the per-channel sums
//! read whole runs (no transposed copy), and the elementwise passes run plane by plane.
//! Sums accumulate in 16 `f32` lanes per run and in `f64` across runs.

use rayon::prelude::*;

/// The sizes of one batch normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Items in the batch.
    pub batch: usize,
    /// Channels: one mean and variance each.
    pub channels: usize,
    /// Values per channel per item (the product of the dimensions after the channels).
    pub spatial: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Values per channel over the whole batch.
    fn count(&self) -> f64 {
        (self.batch * self.spatial) as f64
    }

    /// The runs of channel `c`, one per item.
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (s, stride) = (self.spatial, self.channels * self.spatial);
        (0..self.batch).map(move |b| &data[b * stride + c * s..][..s])
    }

    /// Planes per rayon task in the elementwise passes.
    fn planes_per_task(&self) -> usize {
        MIN_TASK_ELEMENTS.div_ceil(self.spatial.max(1)).max(1)
    }
}

/// The fewest values one rayon task of an elementwise pass handles.
const MIN_TASK_ELEMENTS: usize = 16 * 1024;

const LANES: usize = 16;

/// `sum f(a_i, b_i)` over two equally long runs, in [`LANES`] accumulators.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// Per channel, `sum f(a, b, channel)` over every item's run, in parallel over channels.
fn per_channel(
    s: &NormShape,
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32, usize) -> f32 + Sync,
) -> Vec<f64> {
    (0..s.channels)
        .into_par_iter()
        .map(|c| {
            s.runs(a, c)
                .zip(s.runs(b, c))
                .map(|(x, y)| lane_sum(x, y, |u, v| f(u, v, c)))
                .sum()
        })
        .collect()
}

/// Calls `f(channel, plane, offset)` for every `[spatial]` plane of `out` (`offset`: where
/// the plane starts in the input), in parallel.
fn per_plane(s: &NormShape, out: &mut [f32], f: impl Fn(usize, &mut [f32], usize) + Sync) {
    let (sp, per) = (s.spatial, s.planes_per_task());
    if sp == 0 {
        return;
    }
    out.par_chunks_mut(per * sp)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, plane) in chunk.chunks_mut(sp).enumerate() {
                let p = task * per + i;
                f(p % s.channels, plane, p * sp);
            }
        });
}

fn check(s: &NormShape, x: &[f32], per_channel: &[&[f32]]) {
    assert_eq!(x.len(), s.len(), "batch norm: input size");
    for v in per_channel {
        assert_eq!(v.len(), s.channels, "batch norm: per-channel size");
    }
}

/// The training forward pass: the batch's per-channel mean and biased variance, and
/// `(x - mean) / sqrt(var + eps) * gamma + beta`. Returns `(output, mean, variance)`.
pub fn forward_train(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    check(s, x, &[gamma, beta]);
    let n = s.count().max(1.0);
    let mean: Vec<f32> = per_channel(s, x, x, |v, _, _| v)
        .into_iter()
        .map(|v| (v / n) as f32)
        .collect();
    let var: Vec<f32> = per_channel(s, x, x, |v, _, c| (v - mean[c]) * (v - mean[c]))
        .into_iter()
        .map(|v| (v / n) as f32)
        .collect();
    let out = forward_eval(s, x, gamma, beta, &mean, &var, eps);
    (out, mean, var)
}

/// The inference pass with given statistics: `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn forward_eval(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> Vec<f32> {
    check(s, x, &[gamma, beta, mean, var]);
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| (g as f64 / (v as f64 + eps).sqrt()) as f32)
        .collect();
    let mut out = vec![0.0; s.len()];
    per_plane(s, &mut out, |c, plane, at| {
        let (m, k, b) = (mean[c], scale[c], beta[c]);
        let xs = &x[at..at + plane.len()];
        for (o, &v) in plane.iter_mut().zip(xs) {
            *o = (v - m) * k + b;
        }
    });
    out
}

/// The gradients of [`forward_train`] given the output gradient `grad`, the input, and the
/// mean and variance the forward pass used: `(dx, dgamma, dbeta)`.
pub fn backward_train(
    s: &NormShape,
    x: &[f32],
    grad: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    check(s, x, &[gamma, mean, var]);
    assert_eq!(grad.len(), s.len(), "batch norm: output gradient size");
    let n = s.count().max(1.0);
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + eps).sqrt()).collect();
    let sum_g = per_channel(s, grad, grad, |g, _, _| g);
    let sum_gx = per_channel(s, grad, x, |g, v, c| g * (v - mean[c]));
    let dbeta: Vec<f32> = sum_g.iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = sum_gx
        .iter()
        .zip(&inv_std)
        .map(|(&v, &i)| (v * i) as f32)
        .collect();
    // dx = k (g - sum_g / n - (x - mean) inv_std^2 sum_gx / n), k = gamma inv_std.
    let coef: Vec<(f32, f32, f32)> = (0..s.channels)
        .map(|c| {
            let k = gamma[c] as f64 * inv_std[c];
            let slope = -k * inv_std[c] * inv_std[c] * sum_gx[c] / n;
            let shift = -k * sum_g[c] / n;
            (k as f32, slope as f32, shift as f32)
        })
        .collect();
    let mut dx = vec![0.0; s.len()];
    per_plane(s, &mut dx, |c, plane, at| {
        let (k, slope, shift) = coef[c];
        let (m, n) = (mean[c], plane.len());
        let (xs, gs) = (&x[at..at + n], &grad[at..at + n]);
        for ((d, &v), &g) in plane.iter_mut().zip(xs).zip(gs) {
            *d = g * k + (v - m) * slope + shift;
        }
    });
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919) % 1009) as f32 * 0.01 - 4.0 + (i % 5) as f32)
            .collect()
    }

    /// The textbook definitions in f64, loop by loop.
    fn reference(s: &NormShape, x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f64> {
        let idx = |b: usize, c: usize, i: usize| (b * s.channels + c) * s.spatial + i;
        let mut out = vec![0.0; x.len()];
        for c in 0..s.channels {
            let vals: Vec<f64> = (0..s.batch)
                .flat_map(|b| (0..s.spatial).map(move |i| (b, i)))
                .map(|(b, i)| x[idx(b, c, i)] as f64)
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / vals.len() as f64;
            for b in 0..s.batch {
                for i in 0..s.spatial {
                    let j = idx(b, c, i);
                    out[j] =
                        (x[j] as f64 - m) / (v + eps).sqrt() * gamma[c] as f64 + beta[c] as f64;
                }
            }
        }
        out
    }

    fn shapes() -> Vec<NormShape> {
        vec![
            NormShape {
                batch: 3,
                channels: 4,
                spatial: 37,
            },
            NormShape {
                batch: 64,
                channels: 32,
                spatial: 12,
            },
            NormShape {
                batch: 5,
                channels: 7,
                spatial: 1,
            },
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for s in shapes() {
            let x = data(s.len(), 1);
            let gamma = data(s.channels, 2);
            let beta = data(s.channels, 3);
            let (y, mean, var) = forward_train(&s, &x, &gamma, &beta, 1e-5);
            let want = reference(&s, &x, &gamma, &beta, 1e-5);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{s:?}: {a} vs {b}"
                );
            }
            // The inference pass with the batch's own statistics is the same function.
            assert_eq!(forward_eval(&s, &x, &gamma, &beta, &mean, &var, 1e-5), y);
        }
    }

    /// Both gradients against central finite differences of `sum(w * forward(x))` in f64.
    #[test]
    fn gradients_match_finite_differences() {
        let s = NormShape {
            batch: 3,
            channels: 2,
            spatial: 5,
        };
        let x = data(s.len(), 4);
        let gamma = vec![1.5, -0.7];
        let beta = vec![0.2, 0.1];
        let w = data(s.len(), 9);
        let loss = |x: &[f32], gamma: &[f32]| -> f64 {
            let y = reference(&s, x, gamma, &beta, 1e-3);
            y.iter().zip(&w).map(|(a, &b)| a * b as f64).sum()
        };
        let (_, mean, var) = forward_train(&s, &x, &gamma, &beta, 1e-3);
        let (dx, dgamma, dbeta) = backward_train(&s, &x, &w, &gamma, &mean, &var, 1e-3);
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up, &gamma) - loss(&down, &gamma)) / (2.0 * h as f64);
            assert!(
                (dx[i] as f64 - fd).abs() < 2e-2 * (1.0 + fd.abs()),
                "dx[{i}]: {} vs {fd}",
                dx[i]
            );
        }
        for c in 0..2 {
            let (mut up, mut down) = (gamma.clone(), gamma.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&x, &up) - loss(&x, &down)) / (2.0 * h as f64);
            assert!(
                (dgamma[c] as f64 - fd).abs() < 1e-2 * (1.0 + fd.abs()),
                "dgamma[{c}]"
            );
            let want: f64 = s.runs(&w, c).flatten().map(|&v| v as f64).sum();
            assert!(
                (dbeta[c] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                "dbeta[{c}]"
            );
        }
    }
}
