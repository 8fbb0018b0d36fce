//! Pipeline files for `validate` and `run`: unknown kinds and parameters (with a
//! suggestion), cycles, missing inputs, wrong types, paths that do not exist, names that
//! would put outputs outside the runs folder, files that are not TOML at all.

use super::{Case, Fixture, put};
use crate::util::repo;

const AUDIO: &str = "[stages.audio]\nkind = \"speech.load_wav\"\npath = \"WAVS\"\n";

pub fn cases(f: &Fixture) -> Vec<Case> {
    let wavs = repo().join("datasets/fsdd/recordings");
    let wavs = wavs.to_str().unwrap();
    let runs = f.dir.join("pipelines/runs");
    let runs = runs.to_str().unwrap().to_string();
    let head = |name: &str| format!("[pipeline]\nname = \"{name}\"\n\n");
    let audio = AUDIO.replace("WAVS", wavs);
    let features = "[stages.features]\nkind = \"speech.log_mel\"\ninputs = [\"audio\"]\n";
    let mut cases = Vec::new();
    let mut case = |name: &str, command: &str, text: String, needles: &[&str]| {
        let path = put(f, "pipelines", name, text.as_bytes());
        let mut args = vec![command.to_string(), path];
        if command == "run" {
            args.extend(["--runs-dir".to_string(), runs.clone()]);
        }
        let mut n = vec![name];
        n.extend_from_slice(needles);
        cases.push(Case::refused(&format!("pipelines/{name}"), &args, &n));
    };
    case(
        "unknown-kind.toml",
        "validate",
        format!(
            "{}[stages.audio]\nkind = \"speech.load_wave\"\npath = \"x\"\n",
            head("p")
        ),
        &["did you mean `speech.load_wav`?"],
    );
    case(
        "unknown-parameter.toml",
        "validate",
        format!("{}{audio}{features}n_mel = 40\n", head("p")),
        &["did you mean `n_mels`?"],
    );
    case(
        "cycle.toml",
        "validate",
        format!(
            "{}[stages.a]\nkind = \"speech.log_mel\"\ninputs = [\"b\"]\n\n[stages.b]\nkind = \
             \"speech.log_mel\"\ninputs = [\"a\"]\n",
            head("p")
        ),
        &["cycle"],
    );
    case(
        "missing-input.toml",
        "validate",
        format!("{}{features}", head("p")),
        &["audio"],
    );
    case(
        "wrong-type.toml",
        "validate",
        format!("{}{audio}{features}n_mels = \"forty\"\n", head("p")),
        &["n_mels"],
    );
    case(
        "negative-seed.toml",
        "validate",
        format!("[pipeline]\nname = \"p\"\nseed = -1\n\n{audio}"),
        &["seed"],
    );
    case("empty.toml", "validate", String::new(), &["pipeline"]);
    case("no-stages.toml", "validate", head("p"), &["no stages"]);
    case(
        "not-toml.toml",
        "validate",
        "{\"this\": \"is json\"}\n".into(),
        &[":1:", "invalid TOML"],
    );
    let path = put(
        f,
        "pipelines",
        "binary.toml",
        &[0xFF, 0xFE, 0x00, 0x9F, 0x92, 0x96],
    );
    cases.push(Case::refused(
        "pipelines/binary.toml",
        &["validate", &path],
        &["binary.toml", "UTF-8"],
    ));
    cases.push(Case::refused(
        "pipelines/missing.toml",
        &["validate", "missing.toml"],
        &["missing.toml", "No such file"],
    ));
    let mut case = |name: &str, text: String, needles: &[&str]| {
        let path = put(f, "pipelines", name, text.as_bytes());
        cases.push(Case::refused(
            &format!("pipelines/{name}"),
            &["run", &path, "--runs-dir", &runs],
            needles,
        ));
    };
    case(
        "no-such-path.toml",
        format!("{}{}", head("p"), AUDIO.replace("WAVS", "/no/such/folder")),
        &["stage `audio`", "/no/such/folder", "does not exist"],
    );
    // Outputs go under the runs folder only: a pipeline or stage name that climbs out of
    // it is refused before anything is written (see `escapes`).
    case(
        "climbing-name.toml",
        format!("{}{audio}", head("../../escaped")),
        &["climbing-name.toml", "../../escaped", "may only hold"],
    );
    case(
        "climbing-stage.toml",
        format!(
            "{}[stages.\"../../escaped\"]\nkind = \"speech.load_wav\"\npath = \"{wavs}\"\n",
            head("p")
        ),
        &["climbing-stage.toml", "../../escaped", "may only hold"],
    );
    let outside = f.dir.join("outside");
    let outside = outside.to_str().unwrap();
    case(
        "absolute-name.toml",
        format!("{}{audio}", head(outside)),
        &["absolute-name.toml", outside, "may only hold"],
    );
    cases
}

/// Where the climbing and absolute names would have written: none of these may exist.
pub fn escapes(f: &Fixture) -> Vec<std::path::PathBuf> {
    vec![f.dir.join("escaped"), f.dir.join("outside")]
}
