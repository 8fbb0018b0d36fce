//! PNG plots with plotters: training curves, confusion matrices, ROC curves,
//! hyper-parameter searches and captioned image grids.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::metrics::ConfusionMatrix;
use crate::train::EpochRecord;
use crate::{CoreError, Result};

static FONT: Once = Once::new();

/// A named, coloured series read from each epoch record.
type Series = (
    &'static str,
    RGBColor,
    Box<dyn Fn(&EpochRecord) -> Option<f64>>,
);

/// Registers the embedded DejaVu Sans font (no system fonts needed).
fn ensure_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Renders with `draw` into an RGB buffer of `size` and writes it as PNG, atomically.
fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&mut [u8]) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw(&mut rgb).map_err(|e| plot_err(path, e))?;
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| plot_err(path, e))?;
        w.write_image_data(&rgb).map_err(|e| plot_err(path, e))?;
    }
    crate::fsutil::write_atomic(path, &bytes)
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Draws loss (left) and accuracy (right) per epoch, training and validation.
pub fn training_curves(path: &Path, title: &str, history: &[EpochRecord]) -> Result<()> {
    ensure_font();
    render_png(path, (1000, 420), |buf| {
        let root = BitMapBackend::with_buffer(buf, (1000, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let (left, right) = root.split_horizontally(500);
        let epochs = history.len().max(1) as f64;
        let max_loss = history
            .iter()
            .flat_map(|r| [Some(r.train_loss), r.valid_loss])
            .flatten()
            .fold(0.0f64, f64::max)
            .max(1e-6)
            * 1.05;
        for (area, name, ymax) in [(&left, "loss", max_loss), (&right, "accuracy", 1.0)] {
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(1.0..epochs.max(2.0), 0.0..ymax)?;
            chart.configure_mesh().x_desc("epoch").y_desc(name).draw()?;
            let series: [Series; 2] = if name == "loss" {
                [
                    ("train", BLUE, Box::new(|r| Some(r.train_loss))),
                    ("valid", RED, Box::new(|r| r.valid_loss)),
                ]
            } else {
                [
                    ("train", BLUE, Box::new(|r| Some(r.train_accuracy))),
                    ("valid", RED, Box::new(|r| r.valid_accuracy)),
                ]
            };
            for (label, color, get) in series {
                let pts: Vec<(f64, f64)> = history
                    .iter()
                    .filter_map(|r| get(r).map(|v| (r.epoch as f64, v)))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    })
}

/// Draws a confusion matrix as a heat map with counts (rows: truth, columns: prediction).
pub fn confusion_matrix(path: &Path, title: &str, cm: &ConfusionMatrix) -> Result<()> {
    ensure_font();
    let n = cm.labels.len();
    // A segmented range `0..last` has `last + 1` segments, one per class.
    let last = n.max(2) - 1;
    // Room for every count: 43 GTSRB classes get about 20 pixels a cell.
    let side = (120 + 20 * n as u32).max(640);
    let count_font = if n > 20 { 9 } else { 14 };
    render_png(path, (side, side), |buf| {
        let root = BitMapBackend::with_buffer(buf, (side, side)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..last).into_segmented(), (0..last).into_segmented())?;
        let name = |v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) if *i < n => {
                let idx = if flip { n - 1 - *i } else { *i };
                cm.labels[idx].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| name(v, false))
            .y_label_formatter(&|v| name(v, true))
            .draw()?;
        let max = cm
            .counts
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let shade_of = |v: u64| (v as f64 / max).sqrt();
        // Every cell first, then the counts: a count wider than its cell stays readable
        // instead of being painted over by the next cell.
        for t in 0..n {
            for p in 0..n {
                let shade = shade_of(cm.counts[t][p]);
                let color = RGBColor(
                    (255.0 * (1.0 - shade)) as u8,
                    (255.0 * (1.0 - 0.6 * shade)) as u8,
                    255,
                );
                // Truth 0 is the top row.
                let row = n - 1 - t;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(p), SegmentValue::Exact(row)),
                        (SegmentValue::Exact(p + 1), SegmentValue::Exact(row + 1)),
                    ],
                    color.filled(),
                )))?;
            }
        }
        for t in 0..n {
            for p in 0..n {
                let v = cm.counts[t][p];
                if v > 0 {
                    let row = n - 1 - t;
                    let text_color = if shade_of(v) > 0.6 { WHITE } else { BLACK };
                    chart.draw_series(std::iter::once(Text::new(
                        v.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(row)),
                        ("sans-serif", count_font).into_font().color(&text_color),
                    )))?;
                }
            }
        }
        root.present()?;
        Ok(())
    })
}

/// One named ROC curve: `(false accept rate, true accept rate)` points.
pub type RocCurve = (String, Vec<(f64, f64)>);

/// Draws ROC curves with the false accept rate on a log axis (from `min_far` to 1).
pub fn roc_curves(path: &Path, title: &str, curves: &[RocCurve], min_far: f64) -> Result<()> {
    ensure_font();
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    render_png(path, (640, 520), |buf| {
        let root = BitMapBackend::with_buffer(buf, (640, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((min_far..1.0).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("false accept rate")
            .y_desc("true accept rate")
            .draw()?;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = colors[i % colors.len()];
            let pts: Vec<(f64, f64)> = pts.iter().map(|&(f, t)| (f.max(min_far), t)).collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// One fold's validation score for each setting of a hyper-parameter search, and the index
/// of the setting the search chose.
pub type SearchSeries = (String, Vec<f64>, usize);

/// Draws a hyper-parameter search: each setting's validation score (x: the setting's number
/// in the report's table), one coloured line per searched fold, each fold's winner ringed,
/// and the mean over folds in black when there are several.
pub fn search_scores(
    path: &Path,
    title: &str,
    metric: &str,
    series: &[SearchSeries],
) -> Result<()> {
    ensure_font();
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN];
    let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|v| v.is_finite())
    };
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-4);
    render_png(path, (800, 460), |buf| {
        let root = BitMapBackend::with_buffer(buf, (800, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d(0.5..(n.max(1) as f64 + 0.5), (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("setting (numbered as in report.md)")
            .y_desc(metric)
            .x_labels(n.clamp(2, 30))
            .x_label_formatter(&|x| {
                let r = x.round();
                if (x - r).abs() < 1e-6 && r >= 1.0 {
                    format!("{r}")
                } else {
                    String::new()
                }
            })
            .draw()?;
        for (k, (fold, scores, best)) in series.iter().enumerate() {
            let color = colors[k % colors.len()];
            let pts: Vec<(f64, f64)> = scores
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64 + 1.0, v))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.mix(0.6).stroke_width(1)))?
                .label(fold.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            if let Some(&v) = scores.get(*best).filter(|v| v.is_finite()) {
                let winner = (*best as f64 + 1.0, v);
                chart.draw_series(std::iter::once(Circle::new(
                    winner,
                    8,
                    color.stroke_width(2),
                )))?;
            }
        }
        if series.len() > 1 {
            let mean: Vec<(f64, f64)> = (0..n)
                .filter_map(|i| {
                    let v: Vec<f64> = series
                        .iter()
                        .filter_map(|s| s.1.get(i).copied())
                        .filter(|v| v.is_finite())
                        .collect();
                    (!v.is_empty())
                        .then(|| (i as f64 + 1.0, v.iter().sum::<f64>() / v.len() as f64))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(mean, BLACK.stroke_width(2)))?
                .label("mean")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// One cell of an [`image_grid`]: an RGB image and its caption.
#[derive(Debug, Clone)]
pub struct GridCell {
    /// Pixels, `width * height * 3` bytes, row after row.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Text under the image.
    pub caption: String,
    /// Caption in green (true) or red (false).
    pub good: bool,
}

/// Draws rows of images, each enlarged `scale` times (nearest neighbour) with its caption
/// under it, under column `headers` and a `title`: e.g. one test image per row, clean and
/// then corrupted, each with the prediction it got.
pub fn image_grid(
    path: &Path,
    title: &str,
    headers: &[String],
    rows: &[Vec<GridCell>],
    scale: u32,
) -> Result<()> {
    ensure_font();
    let cols = rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(headers.len())
        .max(1) as u32;
    let cell_w = rows
        .iter()
        .flatten()
        .map(|c| c.width * scale)
        .max()
        .unwrap_or(32)
        .max(110);
    let cell_h = rows
        .iter()
        .flatten()
        .map(|c| c.height * scale)
        .max()
        .unwrap_or(32);
    let (pad, caption_h, top) = (8u32, 18u32, 56u32);
    let width = cols * (cell_w + pad) + pad;
    let height = top + rows.len() as u32 * (cell_h + caption_h + pad) + pad;
    render_png(path, (width, height), |buf| {
        let root = BitMapBackend::with_buffer(buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            title.to_string(),
            (pad as i32, 6),
            ("sans-serif", 18),
        ))?;
        for (j, h) in headers.iter().enumerate() {
            let x = pad + j as u32 * (cell_w + pad);
            root.draw(&Text::new(h.clone(), (x as i32, 34), ("sans-serif", 13)))?;
        }
        for (i, row) in rows.iter().enumerate() {
            let y = top + i as u32 * (cell_h + caption_h + pad);
            for (j, cell) in row.iter().enumerate() {
                let x = pad + j as u32 * (cell_w + pad);
                let (w, h) = (cell.width * scale, cell.height * scale);
                if cell.rgb.len() != (cell.width * cell.height * 3) as usize || w == 0 || h == 0 {
                    continue;
                }
                let mut big = vec![0u8; (w * h * 3) as usize];
                for yy in 0..h {
                    for xx in 0..w {
                        let src = (((yy / scale) * cell.width + xx / scale) * 3) as usize;
                        let dst = ((yy * w + xx) * 3) as usize;
                        big[dst..dst + 3].copy_from_slice(&cell.rgb[src..src + 3]);
                    }
                }
                if let Some(bitmap) =
                    BitMapElement::with_owned_buffer((x as i32, y as i32), (w, h), big)
                {
                    root.draw(&bitmap)?;
                }
                let colour = if cell.good {
                    RGBColor(20, 130, 40)
                } else {
                    RGBColor(200, 30, 30)
                };
                root.draw(&Text::new(
                    cell.caption.clone(),
                    (x as i32, (y + h + 3) as i32),
                    ("sans-serif", 12).into_font().color(&colour),
                ))?;
            }
        }
        root.present()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_valid_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let h: Vec<EpochRecord> = (1..=3)
            .map(|e| EpochRecord {
                epoch: e,
                lr: 1e-3,
                train_loss: 1.0 / e as f64,
                train_accuracy: 0.3 * e as f64,
                valid_loss: Some(1.2 / e as f64),
                valid_accuracy: Some(0.25 * e as f64),
                seconds: 1.0,
            })
            .collect();
        let p = dir.path().join("curves.png");
        training_curves(&p, "test", &h).unwrap();
        let labels = vec!["a".to_string(), "b".to_string()];
        let cm = ConfusionMatrix::new(&labels, &[0, 1, 1], &[0, 1, 0]);
        let q = dir.path().join("cm.png");
        confusion_matrix(&q, "cm", &cm).unwrap();
        let r = dir.path().join("search.png");
        let series = vec![
            ("u1".to_string(), vec![0.93, 0.91, f64::NAN, 0.92], 1),
            ("u2".to_string(), vec![0.94, 0.92, 0.95, 0.90], 3),
        ];
        search_scores(&r, "search", "validation RMSE", &series).unwrap();
        for f in [p, q, r] {
            let bytes = std::fs::read(&f).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", f.display());
            let dec = png::Decoder::new(std::io::Cursor::new(bytes))
                .read_info()
                .unwrap();
            assert!(dec.info().width >= 640);
        }
    }
}
