//! Identity-labelled face folders: `<root>/<person>/<image>`.

use std::path::{Path, PathBuf};

use crate::preprocess::is_image_path;
use crate::{FacesError, Result};

/// One person's folder and image files, in natural order (`2.pgm` before `10.pgm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonFolder {
    /// The person's name (the folder name).
    pub name: String,
    /// Image files.
    pub images: Vec<PathBuf>,
}

/// Lists the people under `root` (one sub-folder each; loose files at the top are ignored).
/// A person folder without any image is an error naming it.
pub fn scan(root: &Path) -> Result<Vec<PersonFolder>> {
    let err = |path: &Path, message: String| FacesError::Dataset {
        path: path.to_path_buf(),
        message,
    };
    let entries = std::fs::read_dir(root)
        .map_err(|e| err(root, format!("cannot read the face folder: {e}")))?;
    let mut people = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| err(root, e.to_string()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let mut images: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| err(&path, format!("cannot read: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image_path(p))
            .collect();
        if images.is_empty() {
            return Err(err(
                &path,
                "person folder has no images (expected .pgm, .png, .jpg, .gif or .bmp files)"
                    .into(),
            ));
        }
        images.sort_by_cached_key(|p| natural_key(p));
        people.push(PersonFolder { name, images });
    }
    if people.is_empty() {
        return Err(err(
            root,
            "no person folders found (expected <root>/<person>/<image>)".into(),
        ));
    }
    people.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(people)
}

fn natural_key(p: &Path) -> (Vec<Chunk>, String) {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (chunks(&stem), stem)
}

/// Compares strings with digit runs as numbers (`s2` < `s10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    chunks(a).cmp(&chunks(b)).then_with(|| a.cmp(b))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    Number(u64),
    Text(String),
}

fn chunks(s: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if !cur.is_empty() && d != digits {
            out.push(chunk(&cur, digits));
            cur.clear();
        }
        digits = d;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(chunk(&cur, digits));
    }
    out
}

fn chunk(s: &str, digits: bool) -> Chunk {
    match (digits, s.parse()) {
        (true, Ok(n)) => Chunk::Number(n),
        _ => Chunk::Text(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_and_images_come_in_natural_order() {
        let dir = tempfile::tempdir().unwrap();
        for person in ["s10", "s2"] {
            let p = dir.path().join(person);
            std::fs::create_dir(&p).unwrap();
            for i in [10, 2, 1] {
                std::fs::write(p.join(format!("{i}.pgm")), b"x").unwrap();
            }
            std::fs::write(p.join("notes.txt"), b"x").unwrap();
        }
        std::fs::write(dir.path().join("README"), b"x").unwrap();
        let people = scan(dir.path()).unwrap();
        assert_eq!(people[0].name, "s2");
        assert_eq!(people[1].name, "s10");
        let names: Vec<_> = people[0]
            .images
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.pgm", "2.pgm", "10.pgm"]);
    }

    #[test]
    fn a_person_folder_without_images_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("alice")).unwrap();
        std::fs::write(dir.path().join("alice").join("a.txt"), b"x").unwrap();
        let err = scan(dir.path()).unwrap_err().to_string();
        assert!(err.contains("alice") && err.contains("no images"), "{err}");
    }
}
