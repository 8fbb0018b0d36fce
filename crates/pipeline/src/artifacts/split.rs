//! `split`: folds, each naming its test items (by original item name, so augmented copies
//! of a test item never leak into training).

use std::any::Any;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use profundo_core::fsutil::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};

use super::ItemMeta;
use crate::StageError;
use crate::registry::Artifact;

/// One train/test partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    /// Fold name, e.g. `theo` for a held-out speaker.
    pub name: String,
    /// Original names of the test items.
    pub test: BTreeSet<String>,
}

impl Fold {
    /// Whether `item` (or the item it was augmented from) is a test item.
    pub fn is_test(&self, item: &ItemMeta) -> bool {
        self.test.contains(item.origin())
    }

    /// Indices of training items (augmented copies included, test-time views not) and of
    /// test items (originals only) among `items`.
    pub fn partition(&self, items: &[ItemMeta]) -> (Vec<usize>, Vec<usize>) {
        let mut train = Vec::new();
        let mut test = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if self.is_test(it) {
                if !it.is_augmented() {
                    test.push(i);
                }
            } else if !it.is_view() {
                train.push(i);
            }
        }
        (train, test)
    }
}

/// A split protocol: one or more folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Human description of the protocol.
    pub protocol: String,
    /// The folds.
    pub folds: Vec<Fold>,
}

const FILE: &str = "split.json";

impl Split {
    /// Artifact type name.
    pub const TYPE: &'static str = "split";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let s: Split = read_json(&dir.join(FILE))?;
        Ok(Arc::new(s))
    }
}

impl Artifact for Split {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        Ok(write_json_atomic(&dir.join(FILE), self)?)
    }
    fn summary(&self) -> String {
        let sizes: Vec<String> = self
            .folds
            .iter()
            .map(|f| format!("{}: {} test", f.name, f.test.len()))
            .collect();
        format!("{} ({})", self.protocol, sizes.join(", "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
