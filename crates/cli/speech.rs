//! `profundo speech recognize` and `profundo speech spot`.

use std::path::{Path, PathBuf};

use profundo_speech::app::{Recognition, Recognizer, SpotConfig, spot};
use profundo_speech::wav::read_wav;

use crate::args::{RecognizeArgs, SpeechArgs, SpeechCommand, SpotArgs};

pub fn speech(a: SpeechArgs) -> anyhow::Result<()> {
    match a.command {
        SpeechCommand::Recognize(r) => recognize(r),
        SpeechCommand::Spot(s) => spot_words(s),
    }
}

fn print(r: &Recognition, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        let top: Vec<String> = r
            .top
            .iter()
            .map(|t| format!("{} {:.3}", t.label, t.score))
            .collect();
        println!(
            "{}\t{}\t{:.3}\t(top: {})",
            r.path,
            r.label,
            r.score,
            top.join(", ")
        );
    }
    Ok(())
}

fn recognize(a: RecognizeArgs) -> anyhow::Result<()> {
    let rec = Recognizer::load(&a.model.model, a.model.backend, &a.model.device)?;
    if a.same_speaker {
        let paths: Vec<&Path> = a.files.iter().map(PathBuf::as_path).collect();
        for r in rec.recognize_same_speaker(&paths)? {
            print(&r, a.json)?;
        }
        return Ok(());
    }
    if rec.wants_speaker_statistics() && a.files.len() > 1 {
        eprintln!(
            "note: this model normalises with a speaker's pooled statistics; if these files \
             are one speaker's, --same-speaker uses them (each file is now prepared alone)"
        );
    }
    let mut failed = 0;
    for f in &a.files {
        match rec.recognize_file(f) {
            Ok(r) => print(&r, a.json)?,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} file(s) could not be recognised",
            a.files.len()
        );
    }
    Ok(())
}

fn spot_words(a: SpotArgs) -> anyhow::Result<()> {
    let rec = Recognizer::load(&a.model.model, a.model.backend, &a.model.device)?;
    let audio = read_wav(&a.file)?;
    let samples = rec.prepare(&audio)?;
    let cfg = SpotConfig {
        threshold_db: a.threshold_db,
        min_score: a.min_score,
        ..SpotConfig::default()
    };
    let found = spot(&rec, &samples, &cfg);
    for d in &found {
        if a.json {
            println!("{}", serde_json::to_string(d)?);
        } else {
            println!(
                "{:>8.2}s {:>8.2}s  {}  {:.3}",
                d.start, d.end, d.label, d.score
            );
        }
    }
    if !a.json {
        eprintln!(
            "{} word(s) found in {} ({:.1} s)",
            found.len(),
            a.file.display(),
            audio.seconds()
        );
    }
    Ok(())
}
