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
    assert!(
        out.stderr.contains("notes.jpg") && out.stderr.contains("not an image file"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("1 of 3 photo(s) could not be read"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("wall.png\tno face found"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("grace_hopper.png\t1 face(s)"),
        "{}",
        out.all()
    );
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
/// the reference MTCNN's (IoU >= 0.95 and landmarks within 2 px for at least 95% of the
/// reference's faces: JPEG decoders differ by a grey level here and there, which can move
/// a borderline candidate), and finds at least 90% of the annotated faces at IoU 0.5.
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
