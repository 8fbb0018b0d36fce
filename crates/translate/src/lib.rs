//! profundo's translation domain: sentences in one language in, sentences in another out.
//!
//! - [`corpus`] and [`split`]: parallel text (TSV or aligned files), normalised, with dev
//!   and test sets that share no sentence with training.
//! - [`tokenizer`]: one byte-level BPE vocabulary for both languages (`tokenizers`).
//! - [`model`], [`batching`] and [`train`]: a Transformer encoder-decoder in Burn trained on
//!   length-bucketed batches, one model for every direction (target-language tag).
//! - [`decode`]: batched greedy and beam search; [`sacrebleu`]: BLEU and chrF exactly as
//!   sacreBLEU computes them; [`evaluation`]: test-set scores and examples.
//! - [`bench`]: the Transformer as `profundo bench models` times it.
//! - [`translator`]: saved models and the [`translator::Translator`] apps use;
//!   [`stages`]: the pipeline stage kinds `translate.*`.

#![warn(missing_docs)]

pub mod batching;
pub mod bench;
pub mod corpus;
pub mod decode;
pub mod error;
pub mod evaluation;
pub mod model;
pub mod sacrebleu;
pub mod split;
pub mod stages;
pub mod tokenizer;
pub mod train;
pub mod translator;

pub use error::{Result, TranslateError};

/// Registers the translation stage kinds and artifact types.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    stages::register(reg);
}
