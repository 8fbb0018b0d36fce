//! Translating with the library API: load a trained model (a model directory or a run
//! directory), pick a direction, and decode greedily and with a beam.
//!
//! ```text
//! cargo run --release -- run pipelines/translate-es-en.toml
//! cargo run --release -p profundo-translate --example translate -- runs/translate-es-en/latest "¿Dónde está la biblioteca?"
//! ```

use std::path::PathBuf;

use burn::tensor::Device;
use profundo_translate::decode::DecodeConfig;
use profundo_translate::translator::Translator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .ok_or("usage: translate MODEL_OR_RUN_DIR [SENTENCE]")?,
    );
    let sentence = args
        .next()
        .unwrap_or_else(|| "¿Dónde está la biblioteca?".to_string());
    let translator = Translator::load(&model, &Device::flex())?;
    // `None` leaves a side open: with an es-en + en-es model, naming the source is enough.
    let direction = translator.direction(Some("es"), None)?;
    for beam in [1, 5] {
        let cfg = DecodeConfig::default().with_beam(beam);
        let out = translator.translate(&[sentence.as_str()], &direction, &cfg)?;
        println!("{direction} beam {beam}: {}", out[0].translation);
    }
    Ok(())
}
