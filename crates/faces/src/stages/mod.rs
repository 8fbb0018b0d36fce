//! Face stage kinds: `faces.load_images`, `faces.train_embedding`, `faces.eigenfaces`,
//! `faces.evaluate`, and the `face_embeddings` artifact they exchange.

pub mod eigen;
pub mod embeddings;
pub mod evaluate;
pub mod load;
pub mod train;

use profundo_pipeline::artifacts::{FeatureSet, Fold, Split};
use profundo_pipeline::registry::Slot;
use profundo_pipeline::stages::{cut_validation, fold_seed};
use profundo_pipeline::{Registry, StageError};

use embeddings::{EmbeddedItem, FaceEmbeddings, Role, Similarity};

/// Registers the face stages and artifact types.
pub fn register(reg: &mut Registry) {
    reg.publishing_artifact(FaceEmbeddings::TYPE, FaceEmbeddings::load)
        .stage::<load::LoadImages>()
        .stage::<train::TrainEmbedding>()
        .stage::<eigen::EigenfacesStage>()
        .stage::<evaluate::EvaluateFaces>();
}

/// The inputs of the stages that fit a face representation per fold: images and a split.
pub const IMAGES_AND_SPLIT: &[Slot] = &[
    Slot {
        name: "images",
        accepts: &[FeatureSet::TYPE],
        optional: false,
    },
    Slot {
        name: "split",
        accepts: &[Split::TYPE],
        optional: false,
    },
];

/// The preprocessing settings `faces.load_images` recorded in its features (without the
/// `kind` tag it adds); an error says what the input holds instead.
pub fn preprocess_of(fs: &FeatureSet) -> Result<crate::preprocess::Preprocess, StageError> {
    let what = "face preprocessing settings (faces.load_images)";
    let mut v: serde_json::Value = fs.settings(what)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("kind");
    }
    serde_json::from_value(v)
        .map_err(|e| StageError::Other(format!("the `features` input does not hold {what}: {e}")))
}

/// One fold's items: training images (validation included), the training images proper,
/// the held-out validation images of the training people, and the test images.
pub struct FoldParts {
    /// The fold's seed.
    pub seed: u64,
    /// Every non-test item.
    pub train_all: Vec<usize>,
    /// Items fitted on.
    pub train: Vec<usize>,
    /// Held-out images of the training people (same choice for every stage with the
    /// same seed and fraction).
    pub valid: Vec<usize>,
    /// Test items.
    pub test: Vec<usize>,
}

impl FoldParts {
    /// Partitions `fs` for `fold` and cuts `valid_fraction` of its training images.
    pub fn new(fs: &FeatureSet, fold: &Fold, pipeline_seed: u64, valid_fraction: f64) -> Self {
        let seed = fold_seed(pipeline_seed, &fold.name);
        let (train_all, test) = fold.partition(&fs.items.items);
        let (train, valid) = cut_validation(&fs.items.items, &train_all, valid_fraction, seed);
        Self {
            seed,
            train_all,
            train,
            valid,
            test,
        }
    }

    /// Every item of `fs` with its role in this fold.
    pub fn items(&self, fs: &FeatureSet) -> Vec<EmbeddedItem> {
        fold_items(fs, &self.train, &self.valid, &self.test)
    }
}

/// Every item of `fs` with its role in a fold (items in none of the lists count as test).
pub fn fold_items(
    fs: &FeatureSet,
    train: &[usize],
    valid: &[usize],
    test: &[usize],
) -> Vec<EmbeddedItem> {
    let mut role = vec![Role::Test; fs.items.items.len()];
    train.iter().for_each(|&i| role[i] = Role::Train);
    valid.iter().for_each(|&i| role[i] = Role::Valid);
    test.iter().for_each(|&i| role[i] = Role::Test);
    fs.items
        .items
        .iter()
        .zip(role)
        .map(|(it, role)| EmbeddedItem {
            name: it.name.clone(),
            person: it.label.clone(),
            role,
        })
        .collect()
}

/// The equal-error-rate threshold over all pairs of validation images; when they hold no
/// genuine pair, over validation images scored against training images.
pub fn threshold_on_validation(
    items: &[EmbeddedItem],
    vectors: &[f32],
    dim: usize,
    similarity: Similarity,
) -> (f64, String) {
    let v = |i: usize| &vectors[i * dim..(i + 1) * dim];
    let valid: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].role == Role::Valid)
        .collect();
    let labels: Vec<&str> = valid.iter().map(|&i| items[i].person.as_str()).collect();
    let (genuine, impostor) = crate::verification::pair_scores(&labels, |a, b| {
        similarity.score(v(valid[a]), v(valid[b]))
    });
    if !genuine.is_empty() && !impostor.is_empty() {
        let ver = crate::verification::verification(&genuine, &impostor);
        return (
            ver.eer_threshold,
            format!(
                "equal error rate on {} genuine / {} impostor validation pairs (validation EER {:.4})",
                genuine.len(),
                impostor.len(),
                ver.eer
            ),
        );
    }
    let train: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].role == Role::Train)
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for &a in &valid {
        for &b in &train {
            let s = similarity.score(v(a), v(b));
            if items[a].person == items[b].person {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    if genuine.is_empty() || impostor.is_empty() {
        let fallback = match similarity {
            Similarity::Cosine => 0.5,
            Similarity::Euclidean => -1e30,
        };
        return (fallback, "no validation pairs: fixed default".into());
    }
    let ver = crate::verification::verification(&genuine, &impostor);
    (
        ver.eer_threshold,
        format!(
            "equal error rate on {} genuine / {} impostor validation-vs-training pairs",
            genuine.len(),
            impostor.len()
        ),
    )
}
