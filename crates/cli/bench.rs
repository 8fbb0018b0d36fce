//! `profundo bench`: speed measurements printed as a table (never asserted in tests).

use std::time::Instant;

use profundo_speech::app::Recognizer;
use profundo_speech::wav::read_wav;

use crate::args::{BenchArgs, BenchCommand, BenchFacesArgs, BenchRecognizeArgs};

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    match a.command {
        BenchCommand::Recognize(r) => recognize(r),
        BenchCommand::Signs(r) => signs(r),
        BenchCommand::Faces(f) => faces(f),
        BenchCommand::Recommend(r) => crate::bench_recommend::recommend(r),
        BenchCommand::Ingest(i) => crate::bench_recommend::ingest(i),
        BenchCommand::Translate(t) => crate::translate::bench(t),
        BenchCommand::Models(m) => crate::bench_models::models(m),
        BenchCommand::Serve(s) => crate::serve::bench(s),
    }
}

pub(crate) use profundo_core::bench::percentile;

fn recognize(a: BenchRecognizeArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let rec = Recognizer::load(&a.model.model, a.model.backend, &a.model.device)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let audio = read_wav(&a.file)?;
    let samples = rec.prepare(&audio)?;
    let iters = a.iters.max(1);
    for _ in 0..10 {
        rec.recognize_samples("", &samples);
    }
    let (mut feat, mut total) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(rec.featurizer().compute(&samples));
        feat.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(rec.recognize_samples("", &samples));
        total.push(t.elapsed().as_secs_f64() * 1e3);
    }
    feat.sort_by(f64::total_cmp);
    total.sort_by(f64::total_cmp);
    let rows = [
        ("features", &feat),
        ("recognize (features + model)", &total),
    ];
    let header = format!(
        "model load: {load_ms:.1} ms; clip {} ({:.2} s); backend {}; {iters} iterations; {} threads",
        a.file.display(),
        audio.seconds(),
        a.model.backend,
        rayon_threads()
    );
    print_table(&header, &rows, iters, a.model.backend, a.json)
}

/// Images per call of the batch row of `bench signs` (the pipeline's batch size).
const SIGN_BATCH: usize = 64;

fn signs(a: BenchRecognizeArgs) -> anyhow::Result<()> {
    use profundo_perception::app::SignClassifier;
    let t0 = Instant::now();
    let clf = SignClassifier::load(&a.model.model, a.model.backend, &a.model.device)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let bytes = std::fs::read(&a.file)
        .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", a.file.display()))?;
    let prepare = || -> anyhow::Result<Vec<f32>> {
        let img = profundo_perception::picture::decode(&bytes, &a.file)?;
        Ok(clf.prepare(&img).0)
    };
    let x = prepare()?;
    let batch: Vec<f32> = x.repeat(SIGN_BATCH);
    let iters = a.iters.max(1);
    for _ in 0..10 {
        std::hint::black_box(clf.probabilities(&x));
    }
    let (mut decode, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(prepare()?);
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(clf.probabilities(&prepare()?));
        one.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for _ in 0..(iters / 8).max(3) {
        let t = Instant::now();
        std::hint::black_box(clf.probabilities(&batch));
        many.push(t.elapsed().as_secs_f64() * 1e3 / SIGN_BATCH as f64);
    }
    for v in [&mut decode, &mut one, &mut many] {
        v.sort_by(f64::total_cmp);
    }
    let rows = [
        ("decode + resize", &decode),
        ("classify 1 sign (decode + model)", &one),
        ("classify a batch of 64, per sign", &many),
    ];
    let header = format!(
        "model load: {load_ms:.1} ms; image {}; backend {}; {iters} iterations; {} threads",
        a.file.display(),
        a.model.backend,
        rayon_threads()
    );
    print_table(&header, &rows, iters, a.model.backend, a.json)
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Prints latency rows (sorted samples in ms) as a Markdown table or a JSON list.
pub(crate) fn print_table(
    header: &str,
    rows: &[(&str, &Vec<f64>)],
    iters: usize,
    backend: profundo_core::backend::BackendKind,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let v: Vec<_> = rows.iter().map(|(name, xs)| serde_json::json!({
            "measure": name, "median_ms": percentile(xs, 0.5), "p95_ms": percentile(xs, 0.95), "iters": iters,
            "backend": backend.to_string(), "threads": rayon_threads(),
        })).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{header}");
    println!("| measure | median ms | p95 ms |\n|---|---|---|");
    for (name, xs) in rows {
        println!(
            "| {name} | {:.3} | {:.3} |",
            percentile(xs, 0.5),
            percentile(xs, 0.95)
        );
    }
    Ok(())
}

pub(crate) fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) fn timed(iters: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..3 {
        f();
    }
    let mut xs: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    xs
}

/// Detection and detect + align + embed on a whole photo (decoded once, outside the timing).
fn photo_rows(
    model: &profundo_faces::app::FaceModel,
    photo: &std::path::Path,
    iters: usize,
) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    use profundo_faces::detect::{DetectorConfig, Planes};
    use profundo_faces::photo::PhotoFaces;

    let detector = crate::faces::load_detector(DetectorConfig::default().min_face_size)?;
    let img = profundo_faces::preprocess::read_image(photo)?;
    let planes = Planes::from_image(&img);
    let found = detector.detect(&planes).len();
    let detect = timed(iters, || {
        std::hint::black_box(detector.detect(&planes));
    });
    let photos = PhotoFaces {
        model,
        detector: Some(&detector),
    };
    let whole = timed(iters, || {
        std::hint::black_box(photos.faces_in(&img, photo).ok());
    });
    let size = format!("{}x{}", img.width(), img.height());
    Ok(vec![
        (
            format!("detect faces ({size} photo, {found} found)"),
            detect,
        ),
        (format!("detect + align + embed ({found} faces)"), whole),
    ])
}

fn faces(a: BenchFacesArgs) -> anyhow::Result<()> {
    use profundo_faces::app::FaceModel;
    use profundo_faces::gallery::{Enrolled, Gallery};
    use rand::{RngExt, SeedableRng};

    let model = FaceModel::load(&a.model.model, a.model.backend, &a.model.device)?;
    let iters = a.iters.max(1);
    let input = model.preprocess().load(&a.image)?;
    let pre = timed(iters, || {
        std::hint::black_box(model.preprocess().load(&a.image).ok());
    });
    let embed = timed(iters, || {
        std::hint::black_box(model.embed_inputs(std::slice::from_ref(&input)));
    });
    let query = model.embed_inputs(std::slice::from_ref(&input)).remove(0);
    // A synthetic gallery: random unit vectors, one image per person.
    let dim = query.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut gallery = Gallery::new(model.model_id(), dim);
    for p in 0..a.gallery_size {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        gallery.enroll(
            &format!("person-{p}"),
            vec![Enrolled {
                image: String::new(),
                embedding: v,
            }],
        )?;
    }
    let identify = timed(iters, || {
        std::hint::black_box(gallery.identify(&query, model.threshold()));
    });
    let gallery_label = format!("identify against {} people", a.gallery_size);
    let mut rows = vec![
        ("preprocess (decode + resize)".to_string(), pre),
        ("embed one image".to_string(), embed),
        (gallery_label, identify),
    ];
    if let Some(photo) = &a.photo {
        rows.extend(photo_rows(&model, photo, iters)?);
    }
    let rows: Vec<(&str, &Vec<f64>)> = rows.iter().map(|(l, t)| (l.as_str(), t)).collect();
    let header = format!(
        "image {}; embedding {dim}-d; backend {}; {iters} iterations; {} threads",
        a.image.display(),
        a.model.backend,
        rayon_threads()
    );
    print_table(&header, &rows, iters, a.model.backend, a.json)
}
