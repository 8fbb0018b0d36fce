//! Recognise spoken digits with a trained model, using the library API.
//!
//! ```text
//! cargo run --release -- run pipelines/quickstart.toml
//! cargo run --release -p profundo-speech --example recognize -- runs/quickstart/latest \
//!     datasets/fsdd/recordings/7_theo_3.wav
//! ```

use std::path::PathBuf;

use profundo_core::backend::BackendKind;
use profundo_speech::app::Recognizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .ok_or("usage: recognize MODEL_OR_RUN_DIR FILE.wav...")?,
    );
    // Loads model.safetensors + manifest.json: network, labels and feature settings.
    let recognizer = Recognizer::load(&model, BackendKind::Flex, "cpu")?;
    println!(
        "model: {} labels, task {}",
        recognizer.manifest().model.labels.len(),
        recognizer.manifest().task
    );
    for file in args {
        // Reads the WAV (any bit depth / channels), resamples, computes the same log-mel
        // features as training, and runs the CNN.
        let r = recognizer.recognize_file(file.as_ref())?;
        let top: Vec<String> = r
            .top
            .iter()
            .map(|t| format!("{}:{:.2}", t.label, t.score))
            .collect();
        println!(
            "{file}: {} ({:.1}%)  top-3 {}",
            r.label,
            100.0 * r.score,
            top.join(" ")
        );
    }
    Ok(())
}
