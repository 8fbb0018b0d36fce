//! Galleries: the people a face model should recognise, stored as names and embeddings in
//! one JSON file written atomically. A gallery belongs to one model (its `model_id`).
//!
//! Enrolling a name that is already in the gallery adds the new images to that person.

use std::path::Path;

use profundo_core::fsutil::write_json_atomic;
use serde::{Deserialize, Serialize};

use crate::{FacesError, Result};

/// Current gallery file format.
pub const FORMAT: u32 = 1;

/// One enrolled image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The image it came from.
    pub image: String,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// One enrolled person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Name.
    pub name: String,
    /// Enrolled images.
    pub images: Vec<Enrolled>,
}

/// A gallery file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gallery {
    /// File format version.
    pub format: u32,
    /// The model whose embeddings these are.
    pub model_id: String,
    /// Embedding size.
    pub embedding_dim: usize,
    /// Enrolled people.
    pub people: Vec<Person>,
    /// Unit-length mean embedding per person (rebuilt on load, not stored).
    #[serde(skip)]
    templates: Vec<Vec<f32>>,
}

/// The name [`Gallery::identify`] gives a face under the threshold.
pub const UNKNOWN_NAME: &str = "unknown";

/// The best match of a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Name of the best-matching person, or `unknown` under the threshold.
    pub name: String,
    /// Cosine similarity to that person's template.
    pub score: f64,
    /// Best-matching enrolled name, even when under the threshold.
    pub nearest: Option<String>,
}

impl Gallery {
    /// An empty gallery for a model.
    pub fn new(model_id: &str, embedding_dim: usize) -> Self {
        Self {
            format: FORMAT,
            model_id: model_id.into(),
            embedding_dim,
            people: Vec::new(),
            templates: Vec::new(),
        }
    }

    /// Reads a gallery file and checks it belongs to `model_id` / `embedding_dim` when given.
    pub fn load(path: &Path, model: Option<(&str, usize)>) -> Result<Self> {
        let err = |message: String| FacesError::Gallery {
            path: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read gallery: {e}")))?;
        let mut g: Gallery = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "corrupt gallery file (not a profundo gallery): {e}"
            ))
        })?;
        if g.format != FORMAT {
            return Err(err(format!(
                "gallery format {} is not supported (expected {FORMAT})",
                g.format
            )));
        }
        for p in &g.people {
            if let Some(bad) = p
                .images
                .iter()
                .find(|i| i.embedding.len() != g.embedding_dim)
            {
                return Err(err(format!(
                    "corrupt gallery: an embedding of `{}` ({}) has {} values, expected {}",
                    p.name,
                    bad.image,
                    bad.embedding.len(),
                    g.embedding_dim
                )));
            }
        }
        if let Some((id, dim)) = model {
            if g.embedding_dim != dim {
                return Err(err(format!(
                    "gallery embeddings have {} values but the model produces {dim}: it was made with another model",
                    g.embedding_dim
                )));
            }
            if g.model_id != id {
                return Err(err(format!(
                    "gallery was made with model {} but this model is {id}; re-enroll with this model",
                    g.model_id
                )));
            }
        }
        g.rebuild();
        Ok(g)
    }

    /// Opens `path` if it exists, else starts an empty gallery for the model.
    pub fn open_or_new(path: &Path, model_id: &str, dim: usize) -> Result<Self> {
        if path.exists() {
            Self::load(path, Some((model_id, dim)))
        } else {
            Ok(Self::new(model_id, dim))
        }
    }

    /// Writes the gallery atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(write_json_atomic(path, self)?)
    }

    /// Adds images to `name` (creating the person if new). Returns how many images the
    /// person has now.
    pub fn enroll(&mut self, name: &str, images: Vec<Enrolled>) -> Result<usize> {
        if name.trim().is_empty() {
            return Err(FacesError::Config("a person's name cannot be empty".into()));
        }
        if let Some(bad) = images
            .iter()
            .find(|i| i.embedding.len() != self.embedding_dim)
        {
            return Err(FacesError::Config(format!(
                "{}: embedding has {} values, the gallery expects {}",
                bad.image,
                bad.embedding.len(),
                self.embedding_dim
            )));
        }
        let n = match self.people.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.images.extend(images);
                p.images.len()
            }
            None => {
                let n = images.len();
                self.people.push(Person {
                    name: name.into(),
                    images,
                });
                n
            }
        };
        self.rebuild();
        Ok(n)
    }

    /// Removes a person; errors when the name is not enrolled.
    pub fn remove(&mut self, name: &str, path: &Path) -> Result<()> {
        let before = self.people.len();
        self.people.retain(|p| p.name != name);
        if self.people.len() == before {
            return Err(FacesError::Gallery {
                path: path.to_path_buf(),
                message: format!(
                    "`{name}` is not enrolled (enrolled: {})",
                    self.names().join(", ")
                ),
            });
        }
        self.rebuild();
        Ok(())
    }

    /// Enrolled names.
    pub fn names(&self) -> Vec<String> {
        self.people.iter().map(|p| p.name.clone()).collect()
    }

    fn rebuild(&mut self) {
        self.templates = self
            .people
            .iter()
            .map(|p| {
                let mut t = vec![0.0f32; self.embedding_dim];
                for i in &p.images {
                    t.iter_mut().zip(&i.embedding).for_each(|(a, b)| *a += b);
                }
                let norm = t.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                t.iter_mut().for_each(|v| *v /= norm);
                t
            })
            .collect();
    }

    /// The best match for an embedding, `unknown` when its score is under `threshold`.
    /// `None` when the gallery is empty.
    pub fn identify(&self, embedding: &[f32], threshold: f64) -> Option<Match> {
        let (best, score) = self
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| (i, crate::app::cosine(embedding, t)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let name = self.people[best].name.clone();
        Some(Match {
            name: if score >= threshold {
                name.clone()
            } else {
                UNKNOWN_NAME.into()
            },
            score,
            nearest: Some(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: [f32; 2]) -> Enrolled {
        Enrolled {
            image: "x.png".into(),
            embedding: v.to_vec(),
        }
    }

    #[test]
    fn enroll_identify_remove_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.json");
        let mut g = Gallery::new("m1", 2);
        assert!(g.identify(&[1.0, 0.0], 0.5).is_none());
        g.enroll("ana", vec![e([1.0, 0.0])]).unwrap();
        g.enroll("bo", vec![e([0.0, 1.0])]).unwrap();
        // Enrolling a name twice adds images.
        assert_eq!(g.enroll("ana", vec![e([0.8, 0.6])]).unwrap(), 2);
        g.save(&path).unwrap();
        let g = Gallery::load(&path, Some(("m1", 2))).unwrap();
        let m = g.identify(&[0.95, 0.3], 0.5).unwrap();
        assert_eq!(m.name, "ana");
        let m = g.identify(&[-1.0, 0.0], 0.5).unwrap();
        assert_eq!(m.name, "unknown");
        let mut g = g;
        g.remove("bo", &path).unwrap();
        assert_eq!(g.names(), ["ana"]);
        let err = g.remove("zed", &path).unwrap_err().to_string();
        assert!(err.contains("`zed` is not enrolled"), "{err}");
    }

    #[test]
    fn corrupt_or_foreign_galleries_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = Gallery::load(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("g.json") && err.contains("corrupt gallery"),
            "{err}"
        );
        Gallery::new("m1", 2).save(&path).unwrap();
        let err = Gallery::load(&path, Some(("m2", 2)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("made with model m1"), "{err}");
        let err = Gallery::load(&path, Some(("m1", 3)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another model"), "{err}");
    }
}
