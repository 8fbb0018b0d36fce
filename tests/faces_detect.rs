//! Face detection as a user runs it: `profundo faces detect` on the shipped photos (boxes
//! where the faces are, the annotated PNG, bad files), and on dlib's annotated photos when
//! the data folder has them: parity with the reference MTCNN and recall at IoU 0.5.

use profundo_faces::detect::metrics::{Annotated, iou, score_detections};
use profundo_faces::detect::reference::{Reference, compare};
use profundo_faces::detect::{Face, imglab};
use serde::Deserialize;

use crate::util::*;

/// One line of `faces detect --json`.
#[derive(Debug, Deserialize)]
struct Line {
    path: String,
    faces: Vec<Face>,
}

fn lines(stdout: &str) -> Vec<Line> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn detect_finds_both_faces_of_the_pair_photo_and_draws_them() {
    let tmp = tempfile::tempdir().unwrap();
    let pair = repo().join("datasets/face-photos/pair.png");
    let drawn = tmp.path().join("pair-faces.png");
    let out = ok(
        tmp.path(),
        &[
            "faces",
            "detect",
            pair.to_str().unwrap(),
            "--json",
            "--draw",
            drawn.to_str().unwrap(),
        ],
    );
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 1, "{}", out.all());
    assert_eq!(got[0].faces.len(), 2, "{}", out.all());
    // Where scripts/face_photos.py put them: the astronaut's face (about (181, 61)-(268, 172)
    // in her photo) at 0.6x from (16, 120), Grace Hopper's ((174, 120)-(356, 340)) at 0.5x
    // from (360, 40). Largest first: Hopper's.
    let expected = [[448.0, 100.0, 538.0, 210.0], [125.0, 157.0, 177.0, 223.0]];
    for (f, e) in got[0].faces.iter().zip(&expected) {
        assert!(iou(&f.bbox, e) > 0.75, "{f:?} vs {e:?}");
        assert!(f.score > 0.99, "{f:?}");
    }
    let png = image::open(&drawn).unwrap();
    assert_eq!((png.width(), png.height()), (640, 480));
    // The drawing changed pixels on the box's top edge (drawn just above the box) and
    // none far from the faces.
    let original = image::open(&pair).unwrap().to_rgb8();
    let png = png.to_rgb8();
    let [x1, y1, x2, _] = got[0].faces[0].bbox.map(|v| v.round() as u32);
    assert_ne!(
        png.get_pixel((x1 + x2) / 2, y1 - 1),
        original.get_pixel((x1 + x2) / 2, y1 - 1)
    );
    assert_eq!(png.get_pixel(5, 5), original.get_pixel(5, 5));
}

#[test]
fn detect_reports_bad_files_by_name_and_still_answers_for_the_good_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.jpg");
    std::fs::write(&text, "not a photo").unwrap();
    let blank = tmp.path().join("wall.png");
    image::GrayImage::from_pixel(200, 150, image::Luma([90]))
        .save(&blank)
        .unwrap();
    let hopper = repo().join("datasets/face-photos/grace_hopper.png");
    let out = profundo(
        tmp.path(),
        &[
            "faces",
            "detect",
            text.to_str().unwrap(),
            blank.to_str().unwrap(),
            hopper.to_str().unwrap(),
        ],
    );
    assert!(!out.ok, "{}", out.all());
    let expected = [
        (&out.stderr, "notes.jpg"),
        (&out.stderr, "not an image file"),
        (&out.stderr, "1 of 3 photo(s) could not be read"),
        (&out.stdout, "wall.png\tno face found"),
        (&out.stdout, "grace_hopper.png\t1 face(s)"),
    ];
    for (stream, needle) in expected {
        assert!(
            stream.contains(needle),
            "`{needle}` missing:\n{}",
            out.all()
        );
    }
    // --draw with several photos writes a folder, one PNG per photo.
    let astronaut = repo().join("datasets/face-photos/astronaut.png");
    let folder = tmp.path().join("drawn");
    ok(
        tmp.path(),
        &[
            "faces",
            "detect",
            hopper.to_str().unwrap(),
            astronaut.to_str().unwrap(),
            "--draw",
            folder.to_str().unwrap(),
        ],
    );
    assert!(folder.join("grace_hopper.png").is_file() && folder.join("astronaut.png").is_file());
}

/// dlib's 9 annotated photos (43 faces, most 40-50 px wide): the detector's output matches
/// the reference MTCNN's (IoU >= 0.95 and landmarks within 2 px) for at least 95% of the
/// reference's faces, and finds at least 90% of the annotated faces at IoU 0.5 (the issue's
/// target). The 95% was set after measuring 40 of 42 (0.952): it allows no more misses than
/// measured. The two misses are JPEG decoding (the `image` crate and libjpeg-turbo differ by a
/// grey level here and there); decoded by Pillow and saved as PNG, the same photo matches
/// the reference to 3 decimals, and the shipped PNGs match exactly (unit test).
#[test]
fn needs_data_dlib_photos_match_the_reference_and_reach_the_recall_floor() {
    let Some(dir) = dataset("dlib-faces") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut photos = imglab::read(&dir.join("training.xml")).unwrap();
    photos.extend(imglab::read(&dir.join("testing.xml")).unwrap());
    let paths: Vec<String> = photos
        .iter()
        .map(|p| dir.join(&p.file).display().to_string())
        .collect();
    let mut args = vec!["faces", "detect", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = ok(tmp.path(), &args);
    let got = lines(&out.stdout);
    assert_eq!(got.len(), photos.len());

    let reference = Reference::builtin();
    let (mut matched, mut total) = (0, 0);
    let mut annotated = Vec::new();
    for (photo, line) in photos.iter().zip(&got) {
        assert!(line.path.ends_with(&*photo.file.to_string_lossy()));
        let name = format!("faces/detection-dlib/{}", photo.file.display());
        let r = reference
            .photos
            .iter()
            .find(|r| r.path == name)
            .unwrap_or_else(|| panic!("{name} is not in the fixture"));
        for (overlap, dist) in compare(&line.faces, &r.faces) {
            total += 1;
            matched += usize::from(overlap >= 0.95 && dist <= 2.0);
        }
        annotated.push(Annotated {
            detections: line.faces.iter().map(|f| (f.bbox, f.score)).collect(),
            truth: photo.faces.clone(),
        });
    }
    let scores = score_detections(&annotated, 0.5);
    eprintln!(
        "dlib photos: reference faces matched {matched}/{total}; {} faces, {} detections, \
         precision {:.3}, recall {:.3}, AP {:.3}",
        scores.faces, scores.detections, scores.precision, scores.recall, scores.average_precision
    );
    assert!(
        total >= 40 && matched as f64 >= 0.95 * total as f64,
        "{matched}/{total}"
    );
    assert_eq!(scores.faces, 43);
    assert!(scores.recall >= 0.9, "{scores:?}");
}

/// What [`whole_photos_of_unseen_people`] measured.
#[derive(Debug)]
pub struct WholePhotoScores {
    /// Rank-1 identification of the lit query photos through detect -> align -> embed.
    pub detect: f64,
    /// The same photos used whole (`--no-detect`), as the apps did before detection.
    pub whole: f64,
    /// Queries in which the detector found exactly one face.
    pub one_face: f64,
    /// Right answers through detection per query lighting (left, right, centre), of 16, 16
    /// and 8 queries.
    pub by_lighting: [(usize, usize); 3],
    /// Rank-1 identification through detection of the same 40 query photos with a cast
    /// shadow instead (`Lighting::ShadowLeft` / `ShadowRight`, alternating).
    pub shadow: f64,
    /// Names given, left to right, to the group photo of three people (and who they are).
    pub group: (Vec<String>, Vec<String>),
}

/// Whole photos of the people the model in `run` never saw (ORL people not in its
/// manifest's `people`): each person enrolled from 5 photos (ORL images 1-5 placed on a
/// seeded 320x243 textured frame at 0.9-1.3x, evenly lit), then identified from 5 other
/// photos (images 6-10, lit from the left, right, front-strong, left, right). Every photo
/// goes through the CLI, with detection and with `--no-detect`; a group photo of three
/// of them (image 6 each, side by side) is identified too.
pub fn whole_photos_of_unseen_people(
    run: &std::path::Path,
    dir: &std::path::Path,
) -> WholePhotoScores {
    use profundo_faces::scenes::{self, Lighting};

    let orl = dataset("orl").expect("the caller checked");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model/manifest.json")).unwrap())
            .unwrap();
    let trained: Vec<&str> = manifest["model"]["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let mut unseen: Vec<String> = (1..=32)
        .map(|i| format!("s{i}"))
        .filter(|p| !trained.contains(&p.as_str()))
        .collect();
    unseen.sort();
    assert_eq!(unseen.len(), 8, "{trained:?}");
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let crop = |p: &str, i: usize| {
        image::open(orl.join(format!("{p}/{i}.pgm")))
            .unwrap()
            .to_luma8()
    };
    let lights = [
        Lighting::Left,
        Lighting::Right,
        Lighting::Centre,
        Lighting::Left,
        Lighting::Right,
    ];
    let mut enrolled: Vec<(String, Vec<String>)> = Vec::new();
    let mut queries: Vec<(String, String, Lighting)> = Vec::new();
    let mut shadowed: Vec<(String, String, Lighting)> = Vec::new();
    for (k, p) in unseen.iter().enumerate() {
        let mut mine = Vec::new();
        for i in 1..=10 {
            let seed = (k * 100 + i) as u64;
            let lighting = if i <= 5 {
                Lighting::Even
            } else {
                lights[i - 6]
            };
            let (scene, _) = scenes::single(&crop(p, i), lighting, seed);
            let path = photos.join(format!("{p}-{i}.png"));
            scene.save(&path).unwrap();
            let path = path.display().to_string();
            if i <= 5 {
                mine.push(path);
            } else {
                queries.push((p.clone(), path, lighting));
                let shadow = [Lighting::ShadowLeft, Lighting::ShadowRight][i % 2];
                let (scene, _) = scenes::single(&crop(p, i), shadow, seed);
                let path = photos.join(format!("{p}-{i}-shadow.png"));
                scene.save(&path).unwrap();
                shadowed.push((p.clone(), path.display().to_string(), shadow));
            }
        }
        enrolled.push((p.clone(), mine));
    }
    let model = run.display().to_string();
    let enroll = |flags: &[&str], gallery: &str| {
        let g = dir.join(gallery).display().to_string();
        for (p, imgs) in &enrolled {
            let mut args = vec![
                "faces",
                "enroll",
                "--model",
                &model,
                "--gallery",
                &g,
                "--name",
                p,
            ];
            args.extend(flags);
            args.extend(imgs.iter().map(String::as_str));
            ok(dir, &args);
        }
    };
    type Query = (String, String, Lighting);
    let accuracy = |flags: &[&str], gallery: &str, queries: &[Query]| {
        let g = dir.join(gallery).display().to_string();
        let mut args = vec![
            "faces",
            "identify",
            "--model",
            &model,
            "--gallery",
            &g,
            "--json",
        ];
        args.extend(flags);
        args.extend(queries.iter().map(|q| q.1.as_str()));
        // A photo in which no face is found is a miss (the command names it and exits
        // non-zero after answering for the others).
        let out = profundo(dir, &args);
        assert!(!out.stdout.is_empty(), "{}", out.stderr);
        let mut by_path: std::collections::HashMap<String, Vec<serde_json::Value>> =
            std::collections::HashMap::new();
        for l in out.stdout.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            by_path
                .entry(v["path"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
        let (mut right, mut single) = (0, 0);
        let mut by_lighting = [(0, 0); 3];
        for (p, q, lighting) in queries {
            let faces = by_path.get(q).map(Vec::as_slice).unwrap_or_default();
            single += usize::from(faces.len() == 1);
            // The largest face comes first.
            let hit = faces
                .first()
                .is_some_and(|f| f["nearest"].as_str() == Some(p.as_str()));
            right += usize::from(hit);
            let k = match lighting {
                Lighting::Left => 0,
                Lighting::Right => 1,
                _ => 2,
            };
            by_lighting[k].0 += usize::from(hit);
            by_lighting[k].1 += 1;
        }
        let n = queries.len() as f64;
        (right as f64 / n, single as f64 / n, by_lighting)
    };
    enroll(&[], "detect.json");
    let (detect, one_face, by_lighting) = accuracy(&[], "detect.json", &queries);
    let (shadow, _, _) = accuracy(&[], "detect.json", &shadowed);
    enroll(&["--no-detect"], "whole.json");
    let (whole, _, _) = accuracy(&["--no-detect"], "whole.json", &queries);

    let who: Vec<String> = unseen[..3].to_vec();
    let crops: Vec<image::GrayImage> = who.iter().map(|p| crop(p, 6)).collect();
    let refs: Vec<&image::GrayImage> = crops.iter().collect();
    let (scene, _) = scenes::group(&refs, 77);
    let path = photos.join("group.png");
    scene.save(&path).unwrap();
    let g = dir.join("detect.json").display().to_string();
    let out = ok(
        dir,
        &[
            "faces",
            "identify",
            "--model",
            &model,
            "--gallery",
            &g,
            "--json",
            path.to_str().unwrap(),
        ],
    );
    let mut faces: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    faces.sort_by(|a, b| {
        a["box"][0]
            .as_f64()
            .unwrap()
            .total_cmp(&b["box"][0].as_f64().unwrap())
    });
    let names = faces
        .iter()
        .map(|f| f["nearest"].as_str().unwrap().to_string())
        .collect();
    WholePhotoScores {
        detect,
        whole,
        one_face,
        by_lighting,
        shadow,
        group: (names, who),
    }
}

/// `photo::ORL_TEMPLATE` is where profundo's detector puts the five landmarks in ORL's
/// crops on average (it was measured with the reference MTCNN): one face in each of the
/// 320 images, and the mean of each landmark within half a pixel of the template.
#[test]
fn needs_data_orl_template_is_the_mean_of_the_detected_landmarks() {
    use profundo_faces::detect::{Detector, DetectorConfig};
    use profundo_faces::photo::ORL_TEMPLATE;

    let Some(orl) = dataset("orl") else {
        return;
    };
    let detector = Detector::on_cpu(DetectorConfig::default()).unwrap();
    let mut sum = [[0.0f64; 2]; 5];
    let mut n = 0;
    for person in 1..=32 {
        for i in 1..=10 {
            let path = orl.join(format!("s{person}/{i}.pgm"));
            let faces = detector.detect_image(&image::open(&path).unwrap());
            assert_eq!(faces.len(), 1, "{}: {faces:?}", path.display());
            for (s, p) in sum.iter_mut().zip(&faces[0].landmarks) {
                s[0] += p[0] as f64;
                s[1] += p[1] as f64;
            }
            n += 1;
        }
    }
    for (s, t) in sum.iter().zip(&ORL_TEMPLATE) {
        let mean = [s[0] / n as f64, s[1] / n as f64];
        assert!(
            (mean[0] - t[0]).abs() < 0.5 && (mean[1] - t[1]).abs() < 0.5,
            "mean {mean:?} vs template {t:?}"
        );
    }
}

/// `faces.load_images` with `detect = true` reads a folder of uncropped photos (each face
/// found and aligned), and names a photo without a face.
#[test]
fn load_images_detects_and_aligns_faces_in_photos_and_names_a_photo_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("people");
    for (person, photo) in [("collins", "astronaut.png"), ("hopper", "grace_hopper.png")] {
        std::fs::create_dir_all(root.join(person)).unwrap();
        let src = repo().join("datasets/face-photos").join(photo);
        std::fs::copy(&src, root.join(person).join("1.png")).unwrap();
        let mirrored = image::open(&src).unwrap().fliph();
        mirrored.save(root.join(person).join("2.png")).unwrap();
    }
    let pipeline = format!(
        "[pipeline]\nname = \"photos\"\n\n[stages.faces]\nkind = \"faces.load_images\"\npath = \"{}\"\ndetect = true\n",
        root.display()
    );
    let p = write(tmp.path(), "photos.toml", &pipeline);
    let out = ok(tmp.path(), &["run", p.to_str().unwrap()]);
    assert!(
        out.all().contains("4 images of 2 people")
            && out.all().contains("faces detected and aligned"),
        "{}",
        out.all()
    );
    image::GrayImage::from_pixel(120, 90, image::Luma([70]))
        .save(root.join("hopper/3.png"))
        .unwrap();
    fails_with(
        tmp.path(),
        &["run", p.to_str().unwrap()],
        &["hopper/3.png", "no face found"],
    );
}
