//! Every `cargo run --release -- ...` command that README.md and docs/*.md show must parse
//! with the real argument parser, and every pipeline they run or validate must load and
//! validate (with its `--set` overrides). Commands are not executed: they need trained
//! models and minutes of training.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::args::{Cli, Command};

const PREFIX: &str = "cargo run --release -- ";

/// The `profundo` arguments of each documented command in `markdown`'s ```sh blocks, with
/// `\` continuations joined and `$PROFUNDO_DATA` replaced by a placeholder folder.
fn commands(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && matches!(trimmed, "```sh" | "```bash" | "```shell");
            continue;
        }
        if !in_sh {
            continue;
        }
        pending.push_str(trimmed);
        if let Some(stripped) = pending.strip_suffix('\\') {
            pending = format!("{stripped} ");
            continue;
        }
        let full = std::mem::take(&mut pending);
        if let Some(rest) = full.strip_prefix(PREFIX) {
            let rest = rest.replace("$PROFUNDO_DATA", "/data");
            let words = shlex::split(&rest).unwrap_or_else(|| panic!("unbalanced quotes: {full}"));
            out.push((full.clone(), words));
        }
    }
    out
}

fn check(file: &Path) -> usize {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(file).expect("documentation file");
    let reg = crate::registry();
    let cmds = commands(&text);
    for (line, words) in &cmds {
        let cli = Cli::try_parse_from(std::iter::once("profundo".to_string()).chain(words.clone()))
            .unwrap_or_else(|e| panic!("{}: `{line}` does not parse:\n{e}", file.display()));
        let (pipeline, set) = match &cli.command {
            Command::Run(a) => (a.pipeline.clone(), a.set.clone()),
            Command::Validate(a) => (Some(a.pipeline.clone()), a.set.clone()),
            _ => (None, Vec::new()),
        };
        if let Some(p) = pipeline {
            profundo_pipeline::spec::load(&root.join(&p), &reg, &set).unwrap_or_else(|e| {
                panic!(
                    "{}: `{line}`: the pipeline does not validate:\n{e}",
                    file.display()
                )
            });
        }
    }
    cmds.len()
}

#[test]
fn every_command_in_the_readme_parses_and_its_pipelines_validate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let n = check(&root.join("README.md"));
    assert!(
        n >= 20,
        "README.md shows only {n} commands: did the parser miss a block?"
    );
}

#[test]
fn every_command_in_the_docs_parses_and_its_pipelines_validate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            total += check(&path);
        }
    }
    assert!(total > 0, "no commands found in docs/");
}

#[test]
fn continuations_quotes_and_comments_are_read_as_a_shell_would() {
    let md = "```sh\ncargo run --release -- translate --from es \\\n    \"¿Dónde está?\"   # a comment\nls\n```\n```toml\ncargo run --release -- not-sh\n```\n";
    let c = commands(md);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, ["translate", "--from", "es", "¿Dónde está?"]);
}
