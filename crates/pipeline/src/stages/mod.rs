//! Domain-independent stage kinds.

mod eval;
mod export;
mod split;
mod train;

pub use eval::EvalClassification;
pub use export::ExportModel;
pub use split::{SplitByGroup, SplitByPattern};
pub use train::{
    FoldTraining, TrainClassifier, argmax, cut_validation, fold_seed, member_tag, sanitize,
    test_views,
};

use crate::registry::Registry;

/// Registers the generic stage kinds and artifact types.
pub fn register(reg: &mut Registry) {
    crate::artifacts::register(reg);
    reg.stage::<SplitByGroup>()
        .stage::<SplitByPattern>()
        .stage::<TrainClassifier>()
        .stage::<EvalClassification>()
        .stage::<ExportModel>();
}
