//! Pipeline files: parsing, `${ENV}` expansion, `--set` overrides and whole-file validation.
//!
//! ```toml
//! [pipeline]
//! name = "quickstart"
//! seed = 42
//!
//! [stages.audio]
//! kind = "speech.load_wav"
//! path = "${PROFUNDO_DATA:-datasets}/fsdd/recordings"
//!
//! [stages.features]
//! kind = "speech.log_mel"
//! inputs = ["audio"]
//! ```
//!
//! Every problem is reported with `file:line` and, where possible, a hint; all of them at
//! once, before any stage runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use profundo_core::backend::BackendKind;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Diagnostic, PipelineError, Result};
use crate::registry::{PreparedStage, Registry, nearest};

mod expand;
pub use expand::expand_env;
use expand::*;

type SpannedTable = IndexMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
struct RawFile {
    pipeline: Option<Spanned<SpannedTable>>,
    stages: Option<IndexMap<Spanned<String>, Spanned<SpannedTable>>>,
}

/// The `[pipeline]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    /// Pipeline name; runs go to `runs/<name>/`.
    pub name: String,
    /// What the pipeline does.
    #[serde(default)]
    pub description: String,
    /// Seed for every random choice (splits, initialisation, shuffling, augmentation).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Backend: `flex` (default), `ndarray`, or `tch` (needs the `tch` cargo feature).
    #[serde(default)]
    pub backend: BackendKind,
    /// Device: `cpu` or `cuda:N` (tch only).
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_seed() -> u64 {
    42
}

fn default_device() -> String {
    "cpu".into()
}

/// One validated stage.
pub struct StageSpec {
    /// Stage name (the key under `[stages]`).
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Producer stage for each input slot (`None`: optional slot left empty).
    pub inputs: Vec<Option<String>>,
    /// Parameters after `${ENV}` expansion and overrides.
    pub params: toml::Table,
    /// Parsed parameters.
    pub prepared: Box<dyn PreparedStage>,
    /// Line of the stage's table in the file.
    pub line: usize,
}

/// A validated pipeline, stages in execution (topological) order.
pub struct Pipeline {
    /// The file it came from.
    pub file: PathBuf,
    /// The `[pipeline]` table.
    pub meta: PipelineMeta,
    /// Stages in dependency order.
    pub stages: Vec<StageSpec>,
}

impl Pipeline {
    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The pipeline as TOML after expansion and overrides (written into each run).
    pub fn resolved_toml(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            pipeline: &'a PipelineMeta,
            stages: IndexMap<&'a str, toml::Table>,
        }
        let stages = self
            .stages
            .iter()
            .map(|s| {
                let mut t = toml::Table::new();
                t.insert("kind".into(), toml::Value::String(s.kind.clone()));
                let inputs: Vec<toml::Value> = s
                    .inputs
                    .iter()
                    .flatten()
                    .map(|i| toml::Value::String(i.clone()))
                    .collect();
                if !inputs.is_empty() {
                    t.insert("inputs".into(), toml::Value::Array(inputs));
                }
                t.extend(s.params.clone());
                (s.name.as_str(), t)
            })
            .collect();
        toml::to_string(&Out {
            pipeline: &self.meta,
            stages,
        })
        .unwrap_or_default()
    }
}

/// Reads and validates a pipeline file, applying `overrides` (`stage.param=value`).
pub fn load(path: &Path, registry: &Registry, overrides: &[String]) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PipelineError::Invalid(vec![Diagnostic {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read pipeline file: {e}"),
            hint: None,
        }])
    })?;
    parse(&text, path, registry, overrides)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&mut self, offset: Option<usize>, message: String, hint: Option<String>) {
        let line = offset.map(|o| self.line_of(o));
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            message,
            hint,
        });
    }
}

/// What a pipeline or stage name may hold, as said in errors.
const PLAIN_NAME: &str =
    "may only hold ASCII letters, digits, `_`, `-` and `.`, and not start with `.`";

/// Whether `name` is usable as a folder name that stays where it is put (no `/`, no `..`).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Validates pipeline text (`file` names it in errors).
pub fn parse(
    text: &str,
    file: &Path,
    registry: &Registry,
    overrides: &[String],
) -> Result<Pipeline> {
    let mut cx = Ctx {
        file,
        text,
        diags: Vec::new(),
    };
    // Syntax first: a TOML error carries its own span.
    let plain: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message().to_string();
            cx.err(
                e.span().map(|s| s.start),
                format!("invalid TOML: {msg}"),
                None,
            );
            return Err(PipelineError::Invalid(cx.diags));
        }
    };
    for key in plain.keys() {
        if key != "pipeline" && key != "stages" {
            let off = find_key(text, key);
            let hint = nearest(key, ["pipeline", "stages"].into_iter())
                .map(|s| format!("did you mean `[{s}]`?"))
                .or_else(|| {
                    Some("a pipeline file has `[pipeline]` and `[stages.<name>]` tables".into())
                });
            cx.err(off, format!("unknown top-level table `{key}`"), hint);
        }
    }
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            cx.err(e.span().map(|s| s.start), e.message().to_string(), None);
            return Err(PipelineError::Invalid(cx.diags));
        }
    };
    let overrides = parse_overrides(overrides, &mut cx);

    // [pipeline]
    let meta = match raw.pipeline {
        None => {
            cx.err(
                None,
                "missing `[pipeline]` table".into(),
                Some("add `[pipeline]` with at least `name = \"...\"`".into()),
            );
            None
        }
        Some(table) => {
            let start = table.span().start;
            let mut t = expand_table(table.into_inner(), &mut cx);
            for (path, value) in overrides.get("pipeline").into_iter().flatten() {
                set_path(&mut t.values, path, value.clone());
            }
            let value = toml::Value::Table(t.values.clone());
            match serde_path_to_error::deserialize::<_, PipelineMeta>(value) {
                Ok(m) if !is_plain_name(&m.name) => {
                    cx.err(
                        t.key_offset("name").or(Some(start)),
                        format!("[pipeline]: name `{}` {PLAIN_NAME}", m.name),
                        Some("the name is a folder under the runs directory".into()),
                    );
                    None
                }
                Ok(m) => Some(m),
                Err(e) => {
                    let key = e.path().to_string();
                    let off = t.key_offset(&key).or(Some(start));
                    cx.err(off, format!("[pipeline]: {}", e.into_inner()), None);
                    None
                }
            }
        }
    };

    // [stages.*]
    let raw_stages = raw.stages.unwrap_or_default();
    if raw_stages.is_empty() {
        cx.err(
            None,
            "the pipeline has no stages".into(),
            Some("add `[stages.<name>]` tables with a `kind`".into()),
        );
    }
    let names: Vec<String> = raw_stages.keys().map(|k| k.get_ref().clone()).collect();
    for (stage, ov) in &overrides {
        if stage != "pipeline" && !names.contains(stage) {
            let hint = nearest(stage, names.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"));
            cx.err(
                None,
                format!(
                    "--set names unknown stage `{stage}` ({} override(s))",
                    ov.len()
                ),
                hint,
            );
        }
    }
    let mut stages: Vec<StageSpec> = Vec::new();
    let mut producers: HashMap<String, &'static str> = HashMap::new();
    // (stage index, offset of its `inputs` key) for the input checks below.
    let mut input_offsets: Vec<(usize, Option<usize>)> = Vec::new();
    for (key, table) in raw_stages {
        let name = key.get_ref().clone();
        let stage_off = key.span().start;
        if !is_plain_name(&name) {
            cx.err(
                Some(stage_off),
                format!("stage name `{name}` {PLAIN_NAME}"),
                Some("stage names are folder names inside the run directory".into()),
            );
            continue;
        }
        let mut t = expand_table(table.into_inner(), &mut cx);
        for (path, value) in overrides.get(&name).into_iter().flatten() {
            set_path(&mut t.values, path, value.clone());
        }
        let kind_name = match t.values.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => {
                cx.err(
                    t.key_offset("kind"),
                    format!("stage `{name}`: `kind` must be a string"),
                    None,
                );
                continue;
            }
            None => {
                cx.err(
                    Some(stage_off),
                    format!("stage `{name}` has no `kind`"),
                    Some("run `profundo list` to see the stage kinds".into()),
                );
                continue;
            }
        };
        let Some(kind) = registry.kind(&kind_name) else {
            let hint = registry
                .suggest(&kind_name)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some("run `profundo list` to see the stage kinds".into()));
            cx.err(
                t.key_offset("kind"),
                format!("stage `{name}`: unknown stage kind `{kind_name}`"),
                hint,
            );
            continue;
        };
        let inputs_off = t.key_offset("inputs");
        let slots = kind.inputs();
        let inputs = match t.values.remove("inputs") {
            None => vec![None; slots.len()],
            Some(toml::Value::String(s)) => fill_slots(vec![Some(s)], slots.len()),
            Some(toml::Value::Array(a)) => {
                let mut v = Vec::new();
                for item in a {
                    match item {
                        toml::Value::String(s) => v.push(Some(s)),
                        other => {
                            cx.err(
                                inputs_off,
                                format!(
                                    "stage `{name}`: `inputs` must list stage names, found {other}"
                                ),
                                None,
                            );
                        }
                    }
                }
                if v.len() > slots.len() {
                    cx.err(
                        inputs_off,
                        format!(
                            "stage `{name}`: {kind_name} takes {} input(s), {} given",
                            slots.len(),
                            v.len()
                        ),
                        Some(format!("inputs of {kind_name}: {}", slot_list(slots))),
                    );
                    v.truncate(slots.len());
                }
                fill_slots(v, slots.len())
            }
            Some(toml::Value::Table(map)) => {
                let mut v = vec![None; slots.len()];
                for (slot_name, producer) in map {
                    match (slots.iter().position(|s| s.name == slot_name), producer) {
                        (Some(i), toml::Value::String(p)) => v[i] = Some(p),
                        (None, _) => cx.err(
                            inputs_off,
                            format!("stage `{name}`: {kind_name} has no input `{slot_name}`"),
                            Some(format!("inputs of {kind_name}: {}", slot_list(slots))),
                        ),
                        (Some(_), other) => cx.err(inputs_off, format!("stage `{name}`: input `{slot_name}` must be a stage name, found {other}"), None),
                    }
                }
                v
            }
            Some(other) => {
                cx.err(
                    inputs_off,
                    format!(
                        "stage `{name}`: `inputs` must be a list of stage names, found {other}"
                    ),
                    None,
                );
                vec![None; slots.len()]
            }
        };
        for (slot, given) in slots.iter().zip(&inputs) {
            if given.is_none() && !slot.optional {
                cx.err(
                    inputs_off.or(Some(stage_off)),
                    format!(
                        "stage `{name}`: missing input `{}` ({})",
                        slot.name,
                        slot.accepts.join(" or ")
                    ),
                    Some(format!(
                        "add `inputs = [...]` naming the stages to read: {}",
                        slot_list(slots)
                    )),
                );
            }
        }
        let prepared = match kind.prepare(&t.values) {
            Ok(p) => p,
            Err(e) => {
                let off = e
                    .param
                    .as_deref()
                    .and_then(|p| t.key_offset(p.split('.').next().unwrap_or(p)))
                    .or_else(|| unknown_field(&e.expected).and_then(|f| t.key_offset(&f)))
                    .or(Some(stage_off));
                let hint = unknown_field(&e.expected).and_then(|f| {
                    let schema = kind.schema();
                    let props = schema_properties(&schema);
                    nearest(&f, props.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            Some(format!("parameters of {kind_name}: {}", props.join(", ")))
                        })
                });
                let what = e
                    .param
                    .as_ref()
                    .map(|p| format!(" `{p}`"))
                    .unwrap_or_default();
                let sep = if e.value.is_some() { " " } else { ": " };
                let detail = format!("{sep}{}", e.detail());
                cx.err(
                    off,
                    format!("stage `{name}` ({kind_name}): invalid parameter{what}{detail}"),
                    hint,
                );
                continue;
            }
        };
        producers.insert(name.clone(), kind.output());
        input_offsets.push((stages.len(), inputs_off));
        stages.push(StageSpec {
            name,
            kind: kind_name,
            inputs,
            params: t.values,
            prepared,
            line: cx.line_of(stage_off),
        });
    }

    // Inputs exist and carry the right artifact types.
    for &(idx, off) in &input_offsets {
        let st = &stages[idx];
        let Some(kind) = registry.kind(&st.kind) else {
            continue;
        };
        for (slot, producer) in kind.inputs().iter().zip(&st.inputs) {
            let Some(p) = producer else { continue };
            match producers.get(p) {
                None if names.contains(p) => {} // producer itself invalid: already reported
                None => {
                    let hint = nearest(p, names.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    cx.err(
                        off,
                        format!(
                            "stage `{}`: input `{p}` is not a stage of this pipeline",
                            st.name
                        ),
                        hint,
                    );
                }
                Some(ty) if !slot.accepts.contains(ty) && !slot.accepts.contains(&"*") => cx.err(
                    off,
                    format!(
                        "stage `{}`: input `{}` expects {} but stage `{p}` produces `{ty}`",
                        st.name,
                        slot.name,
                        slot.accepts
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                    None,
                ),
                Some(_) if p == &st.name => cx.err(
                    off,
                    format!("stage `{}` reads its own output", st.name),
                    None,
                ),
                Some(_) => {}
            }
        }
    }

    // Dependency order; a cycle is an error naming its stages.
    let order = topo_order(&stages);
    if order.len() < stages.len() {
        let stuck: Vec<&str> = stages
            .iter()
            .enumerate()
            .filter(|(i, _)| !order.contains(i))
            .map(|(_, s)| s.name.as_str())
            .collect();
        let first = stages
            .iter()
            .find(|s| stuck.contains(&s.name.as_str()))
            .map(|s| s.line);
        cx.diags.push(Diagnostic {
            file: file.to_path_buf(),
            line: first,
            message: format!("cycle between stages {}", stuck.join(", ")),
            hint: Some("a stage may only read stages that do not (indirectly) read it".into()),
        });
    }
    if !cx.diags.is_empty() {
        return Err(PipelineError::Invalid(cx.diags));
    }
    let Some(meta) = meta else {
        return Err(PipelineError::Invalid(cx.diags));
    };
    let mut slots: Vec<Option<StageSpec>> = stages.into_iter().map(Some).collect();
    let stages = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(Pipeline {
        file: file.to_path_buf(),
        meta,
        stages,
    })
}

fn fill_slots(mut v: Vec<Option<String>>, n: usize) -> Vec<Option<String>> {
    v.resize(n.max(v.len()), None);
    v
}

fn slot_list(slots: &[crate::registry::Slot]) -> String {
    if slots.is_empty() {
        return "none".into();
    }
    slots
        .iter()
        .map(|s| {
            format!(
                "{} ({}{})",
                s.name,
                s.accepts.join("|"),
                if s.optional { ", optional" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Indices of `stages` in dependency order (stable: file order among ready stages).
fn topo_order(stages: &[StageSpec]) -> Vec<usize> {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut done = vec![false; stages.len()];
    let mut order = Vec::new();
    loop {
        let next = (0..stages.len()).find(|&i| {
            !done[i]
                && stages[i]
                    .inputs
                    .iter()
                    .flatten()
                    .all(|p| index.get(p.as_str()).is_none_or(|&j| done[j] && j != i))
        });
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => return order,
        }
    }
}

/// The field named in serde's "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

/// Top-level property names of a JSON schema.
pub fn schema_properties(schema: &schemars::Schema) -> Vec<String> {
    schema
        .as_object()
        .and_then(|o| o.get("properties"))
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Best-effort offset of a top-level key or table header.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut off = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start().trim_start_matches('[').trim_start();
        if t.starts_with(key) {
            return Some(off);
        }
        off += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
