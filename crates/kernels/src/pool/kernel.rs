//! Max pooling over non-overlapping windows (stride equal to the window, no padding, output
//! size rounded down) on `f32` slices in NCHW layout, and its gradient.
//!
//! Each `[h, w]` plane (one channel of one image) is pooled on its own; planes are split
//! into rayon tasks of at least [`MIN_TASK_ELEMENTS`] input values, so the many small planes
//! of a late layer do not become one task each.

use rayon::prelude::*;

/// The sizes of one max pool over non-overlapping `kh x kw` windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Planes: images times channels.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (and stride) height.
    pub kh: usize,
    /// Window (and stride) width.
    pub kw: usize,
}

impl PoolShape {
    /// Output height: whole windows only; trailing rows that fill no window are dropped.
    pub fn out_h(&self) -> usize {
        self.h / self.kh.max(1)
    }

    /// Output width: whole windows only.
    pub fn out_w(&self) -> usize {
        self.w / self.kw.max(1)
    }

    /// Whether the window is non-empty and fits the input at least once.
    pub fn is_valid(&self) -> bool {
        self.kh >= 1 && self.kw >= 1 && self.out_h() >= 1 && self.out_w() >= 1
    }

    fn plane_in(&self) -> usize {
        self.h * self.w
    }

    fn plane_out(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Planes per rayon task.
    fn planes_per_task(&self) -> usize {
        MIN_TASK_ELEMENTS.div_ceil(self.plane_in().max(1)).max(1)
    }
}

/// The fewest input values one rayon task pools.
const MIN_TASK_ELEMENTS: usize = 16 * 1024;

fn check_input(s: &PoolShape, x: &[f32]) {
    assert!(
        s.is_valid(),
        "max pool: window {}x{} does not fit {}x{}",
        s.kh,
        s.kw,
        s.h,
        s.w
    );
    assert_eq!(x.len(), s.planes * s.plane_in(), "max pool: input size");
}

/// Pools one plane into `out`; with `argmax`, also records where each maximum sits in the
/// plane (row-major index). The first maximum of a window wins; NaN wins over any number
/// (as in PyTorch), so NaN propagates.
fn pool_plane(s: &PoolShape, x: &[f32], out: &mut [f32], mut argmax: Option<&mut [u32]>) {
    let (ow, w) = (s.out_w(), s.w);
    for (oy, out_row) in out.chunks_mut(ow).enumerate() {
        let top = oy * s.kh * w;
        for (ox, o) in out_row.iter_mut().enumerate() {
            let mut best = f32::NEG_INFINITY;
            let mut at = top + ox * s.kw;
            let mut first = true;
            for ky in 0..s.kh {
                let start = top + ky * w + ox * s.kw;
                for (kx, &v) in x[start..start + s.kw].iter().enumerate() {
                    if first || v > best || (v.is_nan() && !best.is_nan()) {
                        best = v;
                        at = start + kx;
                        first = false;
                    }
                }
            }
            *o = best;
            if let Some(idx) = argmax.as_deref_mut() {
                idx[oy * ow + ox] = at as u32;
            }
        }
    }
}

/// The maxima of `x` (`[planes, h, w]`): `[planes, out_h, out_w]`.
pub fn forward(s: &PoolShape, x: &[f32]) -> Vec<f32> {
    check_input(s, x);
    let (pin, pout, per) = (s.plane_in(), s.plane_out(), s.planes_per_task());
    let mut out = vec![0.0; s.planes * pout];
    out.par_chunks_mut(per * pout)
        .zip(x.par_chunks(per * pin))
        .for_each(|(dst, src)| {
            for (o, p) in dst.chunks_mut(pout).zip(src.chunks(pin)) {
                pool_plane(s, p, o, None);
            }
        });
    out
}

/// [`forward`] and, per output value, the index of its maximum within its input plane
/// (what [`backward`] needs).
pub fn forward_with_argmax(s: &PoolShape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    check_input(s, x);
    assert!(
        u32::try_from(s.plane_in()).is_ok(),
        "max pool: plane too large"
    );
    let (pin, pout, per) = (s.plane_in(), s.plane_out(), s.planes_per_task());
    let mut out = vec![0.0; s.planes * pout];
    let mut argmax = vec![0u32; s.planes * pout];
    out.par_chunks_mut(per * pout)
        .zip(argmax.par_chunks_mut(per * pout))
        .zip(x.par_chunks(per * pin))
        .for_each(|((dst, idx), src)| {
            for ((o, i), p) in dst
                .chunks_mut(pout)
                .zip(idx.chunks_mut(pout))
                .zip(src.chunks(pin))
            {
                pool_plane(s, p, o, Some(i));
            }
        });
    (out, argmax)
}

/// The gradient with respect to the input: each output gradient goes to its window's maximum
/// (`argmax` from [`forward_with_argmax`]); every other input gets zero.
pub fn backward(s: &PoolShape, argmax: &[u32], grad: &[f32]) -> Vec<f32> {
    let (pin, pout, per) = (s.plane_in(), s.plane_out(), s.planes_per_task());
    assert_eq!(
        grad.len(),
        s.planes * pout,
        "max pool: output gradient size"
    );
    assert_eq!(argmax.len(), grad.len(), "max pool: argmax size");
    let mut dx = vec![0.0; s.planes * pin];
    dx.par_chunks_mut(per * pin)
        .zip(grad.par_chunks(per * pout))
        .zip(argmax.par_chunks(per * pout))
        .for_each(|((dst, g), idx)| {
            for ((d, g), i) in dst
                .chunks_mut(pin)
                .zip(g.chunks(pout))
                .zip(idx.chunks(pout))
            {
                for (&gv, &at) in g.iter().zip(i) {
                    d[at as usize] += gv;
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition: max over each window, first maximum's position.
    fn reference(s: &PoolShape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let mut out = Vec::new();
        let mut idx = Vec::new();
        for p in 0..s.planes {
            for oy in 0..s.out_h() {
                for ox in 0..s.out_w() {
                    let mut best = (f32::NEG_INFINITY, 0usize);
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let i = (oy * s.kh + ky) * s.w + ox * s.kw + kx;
                            if x[p * s.h * s.w + i] > best.0 {
                                best = (x[p * s.h * s.w + i], i);
                            }
                        }
                    }
                    out.push(best.0);
                    idx.push(best.1 as u32);
                }
            }
        }
        (out, idx)
    }

    fn input(n: usize) -> Vec<f32> {
        // Distinct values in a scrambled order, so every window has one maximum.
        (0..n)
            .map(|i| ((i * 7919) % 10007) as f32 * 0.01 - 50.0)
            .collect()
    }

    #[test]
    fn matches_the_definition_with_odd_sizes_and_many_tasks() {
        for s in [
            PoolShape {
                planes: 3,
                h: 5,
                w: 7,
                kh: 2,
                kw: 2,
            },
            PoolShape {
                planes: 700,
                h: 1,
                w: 48,
                kh: 1,
                kw: 2,
            },
            PoolShape {
                planes: 40,
                h: 57,
                w: 46,
                kh: 2,
                kw: 2,
            },
            PoolShape {
                planes: 2,
                h: 9,
                w: 9,
                kh: 3,
                kw: 3,
            },
        ] {
            let x = input(s.planes * s.h * s.w);
            let (want, want_idx) = reference(&s, &x);
            assert_eq!(forward(&s, &x), want, "{s:?}");
            let (got, idx) = forward_with_argmax(&s, &x);
            assert_eq!((got, idx.clone()), (want, want_idx), "{s:?}");
            // The gradient is the adjoint of "pick the maxima": <g, pick(dx)> = <backward(g), dx>.
            let g: Vec<f32> = (0..idx.len()).map(|i| (i % 13) as f32 - 6.0).collect();
            let dx = backward(&s, &idx, &g);
            let plane = s.h * s.w;
            for (o, (&gv, &at)) in g.iter().zip(&idx).enumerate() {
                let p = o / s.plane_out();
                assert_eq!(dx[p * plane + at as usize], gv, "{s:?}");
            }
            assert_eq!(
                dx.iter().filter(|v| **v != 0.0).count(),
                g.iter().filter(|v| **v != 0.0).count()
            );
        }
    }

    #[test]
    fn nan_propagates_and_ties_pick_the_first() {
        let s = PoolShape {
            planes: 1,
            h: 2,
            w: 4,
            kh: 2,
            kw: 2,
        };
        let x = [1.0, f32::NAN, 2.0, 2.0, 3.0, 0.0, 2.0, 1.0];
        let (out, idx) = forward_with_argmax(&s, &x);
        assert!(out[0].is_nan());
        assert_eq!(idx, vec![1, 2]);
        assert_eq!(out[1], 2.0);
    }
}
