//! profundo's speech domain: WAV in, spoken labels out.
//!
//! The same rooms in the same order as every domain:
//! - [`wav`]: WAV reading (8/16/24/32-bit integer, 32-bit float, any channel count) with
//!   errors that name the file and the problem; [`resample`] to the pipeline's rate.
//! - [`features`]: log-mel spectrogram and MFCC, matching librosa (Slaney mel, `htk=False`);
//!   [`input`] turns them into the model's fixed-size, per-utterance normalised input.
//! - [`augment`]: waveform augmentation (noise at an SNR, time shift, gain, speed).
//! - [`stages`]: the pipeline stage kinds `speech.load_wav`, `speech.augment`,
//!   `speech.log_mel`, `speech.mfcc`.
//! - [`model`]: the CNN (conv blocks with batch norm, per speaker if asked) and ensembles.
//! - [`train`]: the `speech.train` stage (the shared loop, fold by fold) and the speech
//!   model directory (typed manifest section, save and load).
//! - [`bench`]: the CNN as `profundo bench models` times it.
//! - [`app`]: `recognize` a clip and `spot` digits in a long recording.

#![warn(missing_docs)]

pub mod app;
pub mod augment;
pub mod bench;
pub mod error;
pub mod features;
pub mod input;
pub mod model;
pub mod resample;
pub mod stages;
pub mod train;
pub mod wav;

pub use error::{Result, SpeechError};

/// Registers the speech stage kinds and artifact types.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    stages::register(reg);
    reg.stage::<train::TrainSpeech>();
}
