//! `profundo translate`: a sentence, a file or standard input, translated line for line.

use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use profundo_core::backend::{self, BackendKind};
use profundo_translate::TranslateError;
use profundo_translate::decode::DecodeConfig;
use profundo_translate::translator::{TranslatedLine, Translator};

use crate::args::{BenchTranslateArgs, TranslateArgs};
use crate::bench::{print_table, timed};

/// Lines of `bytes` as UTF-8; an invalid line is an error naming it.
fn utf8_lines(bytes: &[u8], source: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(lines);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| TranslateError::Input {
            source_name: source.to_string(),
            line: Some(i + 1),
            message: format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
        })?;
        lines.push(line.to_string());
    }
    Ok(lines)
}

/// The lines to translate and where they came from (a file, `<stdin>` or `<argument>`).
fn read_input(a: &TranslateArgs) -> anyhow::Result<(Vec<String>, String)> {
    if !a.text.is_empty() {
        return Ok((vec![a.text.join(" ")], "<argument>".into()));
    }
    match a.input.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let source = p.display().to_string();
            Ok((utf8_lines(&bytes, &source)?, source))
        }
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok((utf8_lines(&bytes, "<stdin>")?, "<stdin>".into()))
        }
    }
}

pub fn translate(a: TranslateArgs) -> anyhow::Result<()> {
    let device = backend::device(a.backend, &a.device)?;
    let t = Translator::load(&a.model, &device)?;
    let dir = t.direction(a.from.as_deref(), a.to.as_deref())?;
    let (lines, source) = read_input(&a)?;
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let cfg = DecodeConfig::default().with_beam(a.beam);
    // An unusable line (too long, say) is named by its source as well as its number.
    let out = t.translate(&refs, &dir, &cfg).map_err(|e| match e {
        TranslateError::Input { line, message, .. } => TranslateError::Input {
            source_name: source,
            line,
            message,
        },
        other => other,
    })?;
    for (i, o) in out.into_iter().enumerate() {
        if o.pieces > 1 {
            eprintln!(
                "warning: line {} is longer than the model's maximum of {} tokens: translated in {} pieces",
                i + 1,
                t.max_source_tokens(),
                o.pieces
            );
        }
        if a.json {
            println!(
                "{}",
                serde_json::to_string(&TranslatedLine::new(i + 1, &dir, o))?
            );
        } else {
            println!("{}", o.translation);
        }
    }
    Ok(())
}

fn bench_lines(a: &BenchTranslateArgs, from: &str) -> anyhow::Result<Vec<String>> {
    if let Some(p) = &a.input {
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut l = utf8_lines(&bytes, &p.display().to_string())?;
        l.truncate(a.lines);
        return Ok(l);
    }
    shipped_sentences(from, a.lines)
}

/// Up to `n` shipped Tatoeba sentences in `lang` (`en` or `es`), one line in every 100
/// (the file is sorted by length, so they span all lengths); read from the repository
/// root.
pub(crate) fn shipped_sentences(lang: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let shipped = Path::new("datasets/tatoeba-spa-eng/spa-eng.train.tsv");
    let col = if lang == "en" { 0 } else { 1 };
    let f = std::fs::File::open(shipped)
        .with_context(|| format!("{} not found: run from the repository root (`bench translate` also takes --input FILE)", shipped.display()))?;
    Ok(std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .step_by(100)
        .filter_map(|l| l.split('\t').nth(col).map(str::to_string))
        .take(n)
        .collect())
}

pub fn bench(a: BenchTranslateArgs) -> anyhow::Result<()> {
    let device = backend::device(BackendKind::default(), "cpu")?;
    let t = Translator::load(&a.model, &device)?;
    let dir = t
        .direction(a.from.as_deref(), a.to.as_deref())
        .or_else(|_| {
            t.directions()
                .first()
                .cloned()
                .context("the model has no direction")
        })?;
    let sentence = if dir.from == "en" {
        "Where is the library?"
    } else {
        "¿Dónde está la biblioteca?"
    };
    let greedy = DecodeConfig::default();
    let beam = greedy.with_beam(a.beam);
    let iters = a.iters.max(1);
    let one_greedy = timed(iters, || {
        std::hint::black_box(t.translate(&[sentence], &dir, &greedy).ok());
    });
    let one_beam = timed(iters, || {
        std::hint::black_box(t.translate(&[sentence], &dir, &beam).ok());
    });
    let lines = bench_lines(&a, &dir.from)?;
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut file_rows = Vec::new();
    for cfg in [&greedy, &beam] {
        let start = Instant::now();
        t.translate(&refs, &dir, cfg)?;
        file_rows.push(vec![start.elapsed().as_secs_f64() * 1e3]);
    }
    let n = refs.len();
    let g_name = format!("{dir}: one short sentence, greedy");
    let b_name = format!("{dir}: one short sentence, beam {}", a.beam);
    let fg_name = format!("{dir}: {n} lines, greedy (total)");
    let fb_name = format!("{dir}: {n} lines, beam {} (total)", a.beam);
    print_table(
        &format!(
            "Translation ({}, {} threads)",
            t.dir().display(),
            crate::bench::rayon_threads()
        ),
        &[
            (g_name.as_str(), &one_greedy),
            (b_name.as_str(), &one_beam),
            (fg_name.as_str(), &file_rows[0]),
            (fb_name.as_str(), &file_rows[1]),
        ],
        iters,
        BackendKind::default(),
        a.json,
    )?;
    if !a.json {
        println!(
            "\nthroughput: {:.1} sentences/s greedy, {:.1} sentences/s beam {}",
            n as f64 / (file_rows[0][0] / 1e3),
            n as f64 / (file_rows[1][0] / 1e3),
            a.beam
        );
    }
    Ok(())
}
