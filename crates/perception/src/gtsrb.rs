//! Reading traffic-sign datasets in the layouts users download:
//!
//! - **GTSRB, official layout**, zipped or unpacked: `Final_Training/Images/NNNNN/` with one
//!   `GT-NNNNN.csv` per class (`Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`)
//!   and the images of its tracks (`TTTTT_FFFFF.ppm`: track, frame), and
//!   `Final_Test/Images/` with the test images, labelled by a `GT-final_test*.csv` with a
//!   `ClassId` column (inside an archive or beside it). Every image is cropped to its ROI
//!   (scaled when the images were resized after the table was written) and resized.
//! - **Class folders**: `<root>/<class>/<image>` (all training), or `<root>/train/<class>/`
//!   and `<root>/test/<class>/`; PNG, JPEG, PPM, GIF or BMP; images named `TTTTT_FFFFF`
//!   keep their track, others are a track of their own.
//!
//! Items are named `train/<label>/<file stem>` and `test/<file stem>`; a training item's
//! group is its physical sign's track (`<label>-<track>`), which validation splits by.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use profundo_pipeline::artifacts::ItemMeta;
use rayon::prelude::*;

use crate::classes::label_of;
use crate::picture::{self, Roi};
use crate::{PerceptionError, Result};

/// A decoded, labelled sign image at the input size.
#[derive(Debug, Clone)]
pub struct SignImage {
    /// Identity, label and track.
    pub meta: ItemMeta,
    /// `[3, size, size]` values in `[0, 1]`.
    pub pixels: Vec<f32>,
}

/// What to read: sizes and (for quick runs) subsets.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Side of the square input, in pixels.
    pub size: u32,
    /// Keep this many frames of each training track, evenly spaced (all if `None`).
    pub frames_per_track: Option<usize>,
    /// Keep every n-th test image (1: all).
    pub test_every: usize,
}

/// Files of a dataset: a folder, or a zip archive held in memory.
enum Tree {
    Dir {
        root: PathBuf,
        files: Vec<String>,
    },
    Zip {
        path: PathBuf,
        files: BTreeMap<String, Vec<u8>>,
    },
}

impl Tree {
    fn files(&self) -> Vec<&str> {
        match self {
            Tree::Dir { files, .. } => files.iter().map(String::as_str).collect(),
            Tree::Zip { files, .. } => files.keys().map(String::as_str).collect(),
        }
    }

    fn read(&self, rel: &str) -> Result<Cow<'_, [u8]>> {
        match self {
            Tree::Dir { root, .. } => {
                let p = root.join(rel);
                std::fs::read(&p)
                    .map(Cow::Owned)
                    .map_err(|e| PerceptionError::image(&p, format!("cannot open: {e}")))
            }
            Tree::Zip { path, files } => files
                .get(rel)
                .map(|b| Cow::Borrowed(b.as_slice()))
                .ok_or_else(|| PerceptionError::dataset(path, format!("no member `{rel}`"))),
        }
    }

    /// How a member is named in errors: the file, or `archive.zip:member`.
    fn display(&self, rel: &str) -> PathBuf {
        match self {
            Tree::Dir { root, .. } => root.join(rel),
            Tree::Zip { path, .. } => PathBuf::from(format!("{}:{rel}", path.display())),
        }
    }

    fn open_zip(path: &Path) -> Result<Tree> {
        let bad = |m: String| PerceptionError::dataset(path, m);
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
        let mut files = BTreeMap::new();
        for i in 0..zip.len() {
            let mut entry = zip
                .by_index(i)
                .map_err(|e| bad(format!("member {i}: {e}")))?;
            if entry.is_dir() {
                continue;
            }
            let name = entry
                .name()
                .map_err(|e| bad(format!("member {i}: {e}")))?
                .replace('\\', "/");
            if !(is_table(&name) || picture::is_image_path(Path::new(&name))) {
                continue;
            }
            let mut bytes = Vec::with_capacity(entry.size().min(64 << 20) as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("member `{name}`: {e}")))?;
            files.insert(name, bytes);
        }
        Ok(Tree::Zip {
            path: path.to_path_buf(),
            files,
        })
    }

    fn open_dir(root: &Path) -> Result<Tree> {
        let mut files = Vec::new();
        walk(root, root, &mut files)?;
        files.sort();
        Ok(Tree::Dir {
            root: root.to_path_buf(),
            files,
        })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PerceptionError::dataset(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| PerceptionError::dataset(dir, e.to_string()))?;
        let p = entry.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root)
            && (is_table(&p.to_string_lossy()) || picture::is_image_path(&p))
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn is_table(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".csv")
}

/// One row of a GTSRB table.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    file: String,
    size: (u32, u32),
    roi: Roi,
    class_id: Option<usize>,
}

/// Parses a GTSRB table (`;`-separated, with a header naming the columns). Tables
/// without `ClassId` (the test set's unlabelled list) give rows without a class.
fn parse_table(text: &str, path: &Path) -> Result<Vec<Row>> {
    let bad = |line: usize, m: String| PerceptionError::dataset(path, format!("line {line}: {m}"));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| PerceptionError::dataset(path, "the table is empty"))?;
    let cols: Vec<&str> = header.trim().split(';').map(str::trim).collect();
    let col = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            PerceptionError::dataset(
                path,
                format!(
                    "the header has no `{name}` column (columns: {})",
                    cols.join(", ")
                ),
            )
        })
    };
    let idx = [
        need("Filename")?,
        need("Width")?,
        need("Height")?,
        need("Roi.X1")?,
        need("Roi.Y1")?,
        need("Roi.X2")?,
        need("Roi.Y2")?,
    ];
    let class = col("ClassId");
    let mut rows = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.trim().split(';').map(str::trim).collect();
        let get = |k: usize| f.get(k).copied().unwrap_or("");
        let num = |k: usize| -> Result<u32> {
            get(k).parse().map_err(|_| {
                bad(
                    i + 1,
                    format!("`{}` is not a non-negative integer ({})", get(k), cols[k]),
                )
            })
        };
        let file = get(idx[0]).to_string();
        if file.is_empty() {
            return Err(bad(i + 1, "no file name".into()));
        }
        let class_id = match class {
            Some(k) => {
                let v = num(k)? as usize;
                Some(v)
            }
            None => None,
        };
        rows.push(Row {
            file,
            size: (num(idx[1])?, num(idx[2])?),
            roi: Roi {
                x1: num(idx[3])?,
                y1: num(idx[4])?,
                x2: num(idx[5])?,
                y2: num(idx[6])?,
            },
            class_id,
        });
    }
    Ok(rows)
}

/// One image to decode.
struct Job {
    tree: usize,
    rel: String,
    meta: ItemMeta,
    roi: Option<(Roi, (u32, u32))>,
}

fn meta(name: String, label: String, group: String, path: String) -> ItemMeta {
    ItemMeta {
        name,
        source: None,
        label,
        group,
        fields: Default::default(),
        path,
        view: None,
    }
}

fn stem(rel: &str) -> &str {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    file.rsplit_once('.').map_or(file, |(s, _)| s)
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The track of an image named `TTTTT_FFFFF` (GTSRB's training naming), else its stem.
fn track_of(stem: &str) -> (&str, Option<usize>) {
    match stem.split_once('_') {
        Some((t, f)) if t.chars().all(|c| c.is_ascii_digit()) => (t, f.parse().ok()),
        _ => (stem, None),
    }
}

fn tables_named(trees: &[Tree], pred: impl Fn(&str) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (t, tree) in trees.iter().enumerate() {
        for f in tree.files() {
            if is_table(f) && pred(f) {
                out.push((t, f));
            }
        }
    }
    out
}

/// The official layout's images: the training tables' rows, and the test images labelled
/// by a test table. Empty if `trees` hold no `Final_Training` or `Final_Test` folder.
fn official_jobs(trees: &[Tree], outer: &[(PathBuf, String)]) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (t, rel) in tables_named(trees, |f| {
        f.contains("Final_Training/Images/")
            && f.rsplit('/').next().is_some_and(|n| n.starts_with("GT-"))
    }) {
        let path = trees[t].display(rel);
        let text = String::from_utf8_lossy(&trees[t].read(rel)?).into_owned();
        let dir = parent(rel);
        for row in parse_table(&text, &path)? {
            let class_id = row.class_id.ok_or_else(|| {
                PerceptionError::dataset(&path, "a training table needs a `ClassId` column")
            })?;
            let label = label_of(class_id);
            let member = format!("{dir}/{}", row.file);
            let s = stem(&row.file);
            let (track, _) = track_of(s);
            jobs.push(Job {
                tree: t,
                meta: meta(
                    format!("train/{label}/{s}"),
                    label.clone(),
                    format!("{label}-{track}"),
                    trees[t].display(&member).display().to_string(),
                ),
                rel: member,
                roi: Some((row.roi, row.size)),
            });
        }
    }
    // Test images, wherever a `Final_Test/Images/` folder is; labels from any table
    // named GT-final_test*.csv with a ClassId column (inside a tree or beside it).
    let test_images: Vec<(usize, &str)> = trees
        .iter()
        .enumerate()
        .flat_map(|(t, tree)| {
            tree.files()
                .into_iter()
                .filter(|f| f.contains("Final_Test/Images/") && !is_table(f))
                .map(move |f| (t, f))
        })
        .collect();
    if test_images.is_empty() {
        return Ok(jobs);
    }
    let mut labels: HashMap<String, Row> = HashMap::new();
    let mut read_table = |text: &str, path: &Path| -> Result<()> {
        for row in parse_table(text, path)? {
            if row.class_id.is_some() {
                labels.insert(row.file.clone(), row);
            }
        }
        Ok(())
    };
    let is_test_table = |f: &str| {
        f.rsplit('/')
            .next()
            .is_some_and(|n| n.to_ascii_lowercase().starts_with("gt-final_test"))
    };
    for (t, rel) in tables_named(trees, is_test_table) {
        let text = String::from_utf8_lossy(&trees[t].read(rel)?).into_owned();
        read_table(&text, &trees[t].display(rel))?;
    }
    for (path, text) in outer {
        read_table(text, path)?;
    }
    let mut unlabelled = 0usize;
    for (t, rel) in test_images {
        let file = rel.rsplit('/').next().unwrap_or(rel);
        let Some(row) = labels.get(file) else {
            unlabelled += 1;
            continue;
        };
        let label = label_of(row.class_id.unwrap_or(0));
        jobs.push(Job {
            tree: t,
            meta: meta(
                format!("test/{}", stem(file)),
                label,
                "test".into(),
                trees[t].display(rel).display().to_string(),
            ),
            rel: rel.to_string(),
            roi: Some((row.roi, row.size)),
        });
    }
    if unlabelled > 0 && labels.is_empty() {
        return Err(PerceptionError::dataset(
            trees[0].display(""),
            format!(
                "{unlabelled} test images under Final_Test/Images but no GT-final_test*.csv \
                 with a ClassId column to label them (put the official GT-final_test.csv \
                 beside the images)"
            ),
        ));
    }
    if unlabelled > 0 {
        tracing::warn!("{unlabelled} test images have no row in the test table; skipped");
    }
    Ok(jobs)
}

/// Class folders: `<class>/<image>`, or `train/<class>/<image>` and `test/<class>/<image>`.
fn folder_jobs(trees: &[Tree]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (t, tree) in trees.iter().enumerate() {
        for rel in tree.files() {
            if is_table(rel) {
                continue;
            }
            let parts: Vec<&str> = rel.split('/').collect();
            let (set, class) = match parts.as_slice() {
                [set, class, _] if set.eq_ignore_ascii_case("test") => ("test", *class),
                [set, class, _] if set.eq_ignore_ascii_case("train") => ("train", *class),
                [class, _] => ("train", *class),
                _ => continue,
            };
            // A folder named by a GTSRB ClassId (`14`, `00014`) gets its canonical label.
            let label = crate::classes::class_id_of(class)
                .map(label_of)
                .unwrap_or_else(|| class.to_string());
            let s = stem(rel);
            let (name, group) = if set == "test" {
                (format!("test/{label}/{s}"), "test".to_string())
            } else {
                let (track, _) = track_of(s);
                (format!("train/{label}/{s}"), format!("{label}-{track}"))
            };
            jobs.push(Job {
                tree: t,
                meta: meta(name, label, group, tree.display(rel).display().to_string()),
                rel: rel.to_string(),
                roi: None,
            });
        }
    }
    jobs
}

/// Keeps `n` evenly spaced frames of every training track and every `every`-th test image.
fn subsample(jobs: Vec<Job>, opts: &LoadOptions) -> Vec<Job> {
    let mut by_track: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if j.meta.group != "test" {
            by_track.entry(j.meta.group.clone()).or_default().push(i);
        }
    }
    let mut keep = vec![false; jobs.len()];
    for idx in by_track.values() {
        let n = opts.frames_per_track.unwrap_or(idx.len()).min(idx.len());
        for k in 0..n {
            // Evenly spaced, the last frame (the nearest, largest view) included.
            let pos = if n == 1 {
                idx.len() - 1
            } else {
                k * (idx.len() - 1) / (n - 1)
            };
            keep[idx[pos]] = true;
        }
    }
    let mut test_seen = 0usize;
    for (i, j) in jobs.iter().enumerate() {
        if j.meta.group == "test" {
            keep[i] = test_seen.is_multiple_of(opts.test_every.max(1));
            test_seen += 1;
        }
    }
    jobs.into_iter()
        .zip(keep)
        .filter_map(|(j, k)| k.then_some(j))
        .collect()
}

/// Reads a sign dataset from `path`: a folder (holding the GTSRB zips, the official
/// layout unpacked, or class folders) or one zip archive. Items come sorted by name.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Vec<SignImage>> {
    let mut trees = Vec::new();
    let mut outer = Vec::new();
    if path.is_file() {
        trees.push(Tree::open_zip(path)?);
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| PerceptionError::dataset(path, format!("cannot list: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in &entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_file() && name.to_ascii_lowercase().ends_with(".zip") {
                trees.push(Tree::open_zip(p)?);
            } else if p.is_file() && is_table(name) {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| PerceptionError::dataset(p, format!("cannot read: {e}")))?;
                outer.push((p.clone(), text));
            }
        }
        trees.push(Tree::open_dir(path)?);
    } else {
        return Err(PerceptionError::dataset(
            path,
            "no such folder or archive (set PROFUNDO_DATA, or see `profundo data list`)",
        ));
    }
    let mut jobs = official_jobs(&trees, &outer)?;
    if jobs.is_empty() {
        jobs = folder_jobs(&trees);
    }
    if jobs.is_empty() {
        return Err(PerceptionError::dataset(
            path,
            "no sign images found: expected the GTSRB layout (Final_Training/Images/NNNNN \
             with GT-NNNNN.csv, zipped or not) or class folders (<class>/<image>, or \
             train/<class>/ and test/<class>/)",
        ));
    }
    // Stable: an image both zipped and unpacked beside its archive is read once, from the
    // archive (the trees' order).
    jobs.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    jobs.dedup_by(|a, b| a.meta.name == b.meta.name);
    let jobs = subsample(jobs, opts);
    let size = opts.size;
    jobs.into_par_iter()
        .map(|job| {
            let tree = &trees[job.tree];
            let shown = tree.display(&job.rel);
            let img = picture::decode(&tree.read(&job.rel)?, &shown)?;
            let roi = job
                .roi
                .and_then(|(roi, declared)| roi.mapped(declared, img.dimensions()));
            Ok(SignImage {
                pixels: picture::to_input(&img, roi, size),
                meta: job.meta,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ppm(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
        for _ in 0..w * h {
            out.extend_from_slice(&[shade, 255 - shade, 40]);
        }
        out
    }

    /// A miniature GTSRB in the official layout: 2 classes x 2 tracks x 3 frames, 4 test
    /// images labelled by a table beside the archive.
    fn mini_gtsrb(dir: &Path) {
        let zip_path = dir.join("GTSRB_Final_Training_Images.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for class in [0u32, 14] {
            let base = format!("GTSRB/Final_Training/Images/{class:05}");
            let mut table =
                String::from("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n");
            for track in 0..2 {
                for frame in 0..3 {
                    let f = format!("{track:05}_{frame:05}.ppm");
                    z.start_file(format!("{base}/{f}"), opts).unwrap();
                    z.write_all(&ppm(10, 12, (class * 10 + frame) as u8))
                        .unwrap();
                    table.push_str(&format!("{f};20;24;2;2;17;21;{class}\n"));
                }
            }
            z.start_file(format!("{base}/GT-{class:05}.csv"), opts)
                .unwrap();
            z.write_all(table.as_bytes()).unwrap();
        }
        z.finish().unwrap();
        let test_dir = dir.join("GTSRB/Final_Test/Images");
        std::fs::create_dir_all(&test_dir).unwrap();
        let mut table =
            String::from("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n");
        for i in 0..4u32 {
            std::fs::write(test_dir.join(format!("{i:05}.ppm")), ppm(16, 16, 0)).unwrap();
            table.push_str(&format!(
                "{i:05}.ppm;16;16;1;1;14;14;{}\r\n",
                [0, 14][i as usize % 2]
            ));
        }
        std::fs::write(dir.join("GT-final_test_even.csv"), table).unwrap();
    }

    fn opts() -> LoadOptions {
        LoadOptions {
            size: 8,
            frames_per_track: None,
            test_every: 1,
        }
    }

    #[test]
    fn the_official_layout_reads_zipped_training_and_unpacked_test_images() {
        let dir = tempfile::tempdir().unwrap();
        mini_gtsrb(dir.path());
        let signs = load(dir.path(), &opts()).unwrap();
        assert_eq!(signs.len(), 2 * 2 * 3 + 4);
        // The same training images unpacked beside their archive are not read twice.
        let zip_path = dir.path().join("GTSRB_Final_Training_Images.zip");
        let mut z = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
        z.extract(dir.path()).unwrap();
        assert_eq!(load(dir.path(), &opts()).unwrap().len(), 2 * 2 * 3 + 4);
        let train: Vec<&SignImage> = signs.iter().filter(|s| s.meta.group != "test").collect();
        assert_eq!(train.len(), 12);
        let first = &train[0].meta;
        assert_eq!(first.name, "train/00/00000_00000");
        assert_eq!(first.group, "00-00000");
        assert!(
            first.path.contains(".zip:GTSRB/Final_Training"),
            "{}",
            first.path
        );
        let stops = signs.iter().filter(|s| s.meta.label == "14").count();
        assert_eq!(stops, 6 + 2);
        assert!(signs.iter().all(|s| s.pixels.len() == 3 * 8 * 8));
        // Subsets for quick runs: one frame per track, every second test image.
        let few = load(
            dir.path(),
            &LoadOptions {
                frames_per_track: Some(1),
                test_every: 2,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(few.len(), 4 + 2);
        assert!(few.iter().any(|s| s.meta.name == "train/14/00001_00002"));
    }

    #[test]
    fn class_folders_read_as_training_and_test_sets() {
        let dir = tempfile::tempdir().unwrap();
        for (set, class, n) in [
            ("train", "14", 3),
            ("train", "kangaroo", 2),
            ("test", "14", 1),
        ] {
            let d = dir.path().join(set).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                std::fs::write(d.join(format!("img{i}.ppm")), ppm(9, 9, 100)).unwrap();
            }
        }
        let signs = load(dir.path(), &opts()).unwrap();
        assert_eq!(signs.len(), 6);
        let labels: Vec<&str> = signs.iter().map(|s| s.meta.label.as_str()).collect();
        assert!(labels.contains(&"kangaroo") && labels.contains(&"14"));
        assert_eq!(signs.iter().filter(|s| s.meta.group == "test").count(), 1);
    }

    #[test]
    fn broken_datasets_are_refused_naming_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("nope"), &opts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("no such folder"), "{e}");
        let e = load(dir.path(), &opts()).unwrap_err().to_string();
        assert!(e.contains("no sign images found"), "{e}");
        // A table with a missing column, and one with a bad number.
        let base = dir.path().join("Final_Training/Images/00001");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("GT-00001.csv"), "Filename;Width\na.ppm;3\n").unwrap();
        let e = load(dir.path(), &opts()).unwrap_err().to_string();
        assert!(e.contains("GT-00001.csv") && e.contains("`Height`"), "{e}");
        std::fs::write(
            base.join("GT-00001.csv"),
            "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\na.ppm;3;x;0;0;2;2;1\n",
        )
        .unwrap();
        let e = load(dir.path(), &opts()).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`x`"), "{e}");
        // A listed image that is not an image.
        std::fs::write(
            base.join("GT-00001.csv"),
            "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\na.ppm;9;9;0;0;8;8;1\n",
        )
        .unwrap();
        std::fs::write(base.join("a.ppm"), "not a picture").unwrap();
        let e = load(dir.path(), &opts()).unwrap_err().to_string();
        assert!(e.contains("a.ppm") && e.contains("not an image"), "{e}");
    }
}
