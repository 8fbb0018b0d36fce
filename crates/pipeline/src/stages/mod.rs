//! Domain-independent stage kinds.

mod eval;
mod export;
mod fold_training;
mod split;

pub use eval::{ClassificationSummary, EvalClassification};
pub use export::ExportModel;
pub use fold_training::{
    FoldTraining, TrainingRecord, argmax, check_valid_fraction, cut_validation,
    cut_validation_groups, fold_seed, held_out_predictions, log_history, member_tag, sanitize,
    test_views,
};
pub use split::{SplitByGroup, SplitByPattern};

use crate::registry::Registry;

/// Registers the generic stage kinds and artifact types.
pub fn register(reg: &mut Registry) {
    crate::artifacts::register(reg);
    reg.stage::<SplitByGroup>()
        .stage::<SplitByPattern>()
        .stage::<EvalClassification>()
        .stage::<ExportModel>();
}
