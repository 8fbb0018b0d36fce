//! Images as the detector reads them: three planes (R, G, B) of `f32` pixel values in
//! 0..=255, and area resampling of a region to a given size (PyTorch's
//! `interpolate(mode="area")`, which is adaptive average pooling: the reference MTCNN
//! resizes its pyramid levels and candidate crops that way).

/// An RGB image as three row-major planes of values in 0..=255.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 * height * width` values: the R plane, then G, then B.
    pub data: Vec<f32>,
}

/// A pixel rectangle `[x0, x1) x [y0, y1)` of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
}

impl Planes {
    /// The planes of a decoded image (grey images get three equal planes).
    pub fn from_image(img: &image::DynamicImage) -> Self {
        let rgb = img.to_rgb8();
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        let mut data = vec![0.0; 3 * width * height];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * width * height + i] = px.0[c] as f32;
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// The whole image as a region.
    pub fn full(&self) -> Region {
        Region {
            x0: 0,
            x1: self.width,
            y0: 0,
            y1: self.height,
        }
    }

    /// `region` resampled to `out_h x out_w` by area averaging, as three planes; each output
    /// pixel is the mean of the input pixels its cell covers (cells of neighbouring outputs
    /// overlap when shrinking by a non-integer factor, as in adaptive average pooling).
    pub fn area_resize(&self, region: Region, out_h: usize, out_w: usize) -> Vec<f32> {
        let (rh, rw) = (region.y1 - region.y0, region.x1 - region.x0);
        let rows = cells(rh, out_h);
        let cols = cells(rw, out_w);
        let plane = self.width * self.height;
        let mut out = Vec::with_capacity(3 * out_h * out_w);
        let mut row_means = vec![0.0f32; rw];
        for c in 0..3 {
            let src = &self.data[c * plane..(c + 1) * plane];
            for &(r0, r1) in &rows {
                row_means.iter_mut().for_each(|v| *v = 0.0);
                for y in r0..r1 {
                    let line = &src[(region.y0 + y) * self.width + region.x0..][..rw];
                    row_means.iter_mut().zip(line).for_each(|(m, v)| *m += v);
                }
                let inv_rows = 1.0 / (r1 - r0) as f32;
                for &(c0, c1) in &cols {
                    let sum: f32 = row_means[c0..c1].iter().sum();
                    out.push(sum * inv_rows / (c1 - c0) as f32);
                }
            }
        }
        out
    }
}

/// The input interval `[start, end)` each of `out` cells averages over `n` inputs:
/// `floor(i * n / out) .. ceil((i + 1) * n / out)`.
fn cells(n: usize, out: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|i| (i * n / out, ((i + 1) * n).div_ceil(out)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> Planes {
        let data = (0..3 * width * height).map(|i| (i % 251) as f32).collect();
        Planes {
            width,
            height,
            data,
        }
    }

    #[test]
    fn integer_shrinking_averages_blocks_and_same_size_copies() {
        let p = ramp(4, 2);
        // One channel's 2x4 plane [0 1 2 3; 4 5 6 7] to 1x2: means of the 2x2 blocks.
        let out = p.area_resize(p.full(), 1, 2);
        assert_eq!(&out[..2], &[2.5, 4.5]);
        assert_eq!(p.area_resize(p.full(), 2, 4), p.data);
    }

    #[test]
    fn non_integer_cells_overlap_like_adaptive_average_pooling() {
        // 5 inputs into 3 cells: [0, 2), [1, 4), [3, 5).
        assert_eq!(cells(5, 3), vec![(0, 2), (1, 4), (3, 5)]);
        // Growing repeats pixels: 2 into 4 gives [0,1) [0,1) [1,2) [1,2).
        assert_eq!(cells(2, 4), vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn a_region_is_resampled_alone() {
        let p = ramp(6, 6);
        let region = Region {
            x0: 2,
            x1: 4,
            y0: 1,
            y1: 3,
        };
        let out = p.area_resize(region, 1, 1);
        // Channel 0 pixels (1,2) (1,3) (2,2) (2,3) = 8, 9, 14, 15.
        assert_eq!(out[0], (8.0 + 9.0 + 14.0 + 15.0) / 4.0);
        assert_eq!(out.len(), 3);
    }
}
