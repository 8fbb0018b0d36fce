//! dlib's imglab XML, the annotation format of dlib's face detection examples: `<image
//! file='...'>` elements holding `<box top='' left='' width='' height=''/>` (with
//! `ignore='1'` for faces a detector may miss without penalty). Only those elements and
//! attributes are read; everything else in the file is skipped.

use std::path::{Path, PathBuf};

use crate::{FacesError, Result};

/// One annotated photo.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotatedPhoto {
    /// The photo, relative to the XML file's folder as written in it.
    pub file: PathBuf,
    /// Face boxes `[x1, y1, x2, y2]`.
    pub faces: Vec<[f32; 4]>,
    /// Boxes marked `ignore`.
    pub ignored: Vec<[f32; 4]>,
}

/// Reads an imglab XML file.
pub fn read(path: &Path) -> Result<Vec<AnnotatedPhoto>> {
    let text = std::fs::read_to_string(path).map_err(|e| FacesError::Dataset {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text).map_err(|message| FacesError::Dataset {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses imglab XML; the error says which element is wrong.
pub fn parse(text: &str) -> std::result::Result<Vec<AnnotatedPhoto>, String> {
    let mut photos: Vec<AnnotatedPhoto> = Vec::new();
    let mut open = false;
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        let end = rest[at..]
            .find('>')
            .ok_or_else(|| format!("unclosed tag near `{}`", snippet(&rest[at..])))?;
        let tag = &rest[at + 1..at + end];
        rest = &rest[at + end + 1..];
        let name = tag.split_whitespace().next().unwrap_or("");
        match name {
            "image" => {
                let file = attribute(tag, "file")
                    .ok_or_else(|| format!("<{tag}> has no `file` attribute"))?;
                photos.push(AnnotatedPhoto {
                    file: PathBuf::from(file),
                    faces: Vec::new(),
                    ignored: Vec::new(),
                });
                open = !tag.ends_with('/');
            }
            "/image" => open = false,
            "box" => {
                let photo = photos
                    .last_mut()
                    .filter(|_| open)
                    .ok_or_else(|| format!("<{tag}> is outside an <image> element"))?;
                let number = |key: &str| -> std::result::Result<f32, String> {
                    let v = attribute(tag, key)
                        .ok_or_else(|| format!("<{tag}> has no `{key}` attribute"))?;
                    v.parse::<f32>()
                        .map_err(|_| format!("<{tag}>: `{key}` = `{v}` is not a number"))
                };
                let (top, left) = (number("top")?, number("left")?);
                let (width, height) = (number("width")?, number("height")?);
                if width <= 0.0 || height <= 0.0 {
                    return Err(format!("<{tag}>: the box is empty"));
                }
                let b = [left, top, left + width, top + height];
                if attribute(tag, "ignore").is_some_and(|v| v != "0") {
                    photo.ignored.push(b);
                } else {
                    photo.faces.push(b);
                }
            }
            _ => {}
        }
    }
    Ok(photos)
}

/// The value of `key='...'` or `key="..."` in a tag.
fn attribute<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(key) {
        let start = from + i;
        from = start + key.len();
        let before_ok = start == 0 || tag.as_bytes()[start - 1].is_ascii_whitespace();
        let after = tag[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let body = &value[1..];
        return body.find(quote).map(|e| &body[..e]);
    }
    None
}

fn snippet(s: &str) -> &str {
    &s[..s.len().min(40)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_images_boxes_and_ignored_boxes() {
        let xml = "<?xml version='1.0'?>\n<dataset><name>t</name><images>\n\
            <image file='a.jpg' width='500'>\n  <box top='10' left='20' width='30' height='40'/>\n\
            <box top=\"1\" left=\"2\" width=\"3\" height=\"4\" ignore='1'/>\n</image>\n\
            <image file='b.jpg'/>\n</images></dataset>";
        let photos = parse(xml).unwrap();
        assert_eq!(photos.len(), 2);
        assert_eq!(photos[0].file, PathBuf::from("a.jpg"));
        assert_eq!(photos[0].faces, vec![[20.0, 10.0, 50.0, 50.0]]);
        assert_eq!(photos[0].ignored, vec![[2.0, 1.0, 5.0, 5.0]]);
        assert!(photos[1].faces.is_empty());
    }

    #[test]
    fn malformed_boxes_are_named() {
        let e = parse("<image file='a.jpg'><box top='x' left='1' width='2' height='3'/></image>")
            .unwrap_err();
        assert!(e.contains("`top` = `x` is not a number"), "{e}");
        let e = parse("<box top='1' left='1' width='2' height='3'/>").unwrap_err();
        assert!(e.contains("outside an <image>"), "{e}");
        let e =
            parse("<image file='a.jpg'><box top='1' left='1' width='0' height='3'/>").unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }
}
