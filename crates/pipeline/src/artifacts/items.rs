//! Item metadata shared by every labelled collection (clips, images, feature sets).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One example's identity: where it came from, its label and its group (e.g. speaker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// Unique name (file stem; augmented copies append `#augN`).
    pub name: String,
    /// The original item an augmented copy was made from (`None` for originals).
    pub source: Option<String>,
    /// Class label.
    pub label: String,
    /// Group (speaker, person, session) used by group-wise splits.
    pub group: String,
    /// Other fields parsed from the file name (e.g. `take`).
    pub fields: BTreeMap<String, String>,
    /// Source file.
    pub path: String,
    /// A test-time view of `source` (e.g. `speed=0.9`, a clip played faster): never trained
    /// on; a held-out item's prediction is the mean over the item and its views.
    #[serde(default)]
    pub view: Option<String>,
}

impl ItemMeta {
    /// The name of the original item (itself for originals).
    pub fn origin(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }

    /// Whether this is an augmented copy (a test-time view included).
    pub fn is_augmented(&self) -> bool {
        self.source.is_some()
    }

    /// Whether this is a test-time view of its source, which training never uses.
    pub fn is_view(&self) -> bool {
        self.view.is_some()
    }
}

/// A labelled collection's items and its sorted label names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Items {
    /// The items.
    pub items: Vec<ItemMeta>,
    /// Label names, sorted; class index = position.
    pub labels: Vec<String>,
}

impl Items {
    /// Builds the label list from the items (sorted, unique).
    pub fn new(items: Vec<ItemMeta>) -> Self {
        let mut labels: Vec<String> = items.iter().map(|i| i.label.clone()).collect();
        labels.sort();
        labels.dedup();
        Self { items, labels }
    }

    /// Class index of each item.
    pub fn label_ids(&self) -> Vec<usize> {
        self.items
            .iter()
            .map(|i| self.labels.binary_search(&i.label).unwrap_or(0))
            .collect()
    }

    /// Group index of each item (its position in [`Self::groups`]).
    pub fn group_ids(&self) -> Vec<usize> {
        let groups = self.groups();
        self.items
            .iter()
            .map(|i| groups.binary_search(&i.group).unwrap_or(0))
            .collect()
    }

    /// Distinct groups, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut g: Vec<String> = self.items.iter().map(|i| i.group.clone()).collect();
        g.sort();
        g.dedup();
        g
    }

    /// blake3 fingerprint of names and labels (identifies the data a model was trained on).
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        for i in &self.items {
            h.update(i.name.as_bytes());
            h.update(b"\0");
            h.update(i.label.as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_hex()[..16].to_string()
    }
}
