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
                    .or_else(|| unknown_field(&e.message).and_then(|f| t.key_offset(&f)))
                    .or(Some(stage_off));
                let hint = unknown_field(&e.message).and_then(|f| {
                    let schema = kind.schema();
                    let props = schema_properties(&schema);
                    nearest(&f, props.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            Some(format!("parameters of {kind_name}: {}", props.join(", ")))
                        })
                });
                let what = e.param.map(|p| format!(" `{p}`")).unwrap_or_default();
                cx.err(
                    off,
                    format!(
                        "stage `{name}` ({kind_name}): invalid parameter{what}: {}",
                        e.message
                    ),
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

/// A stage table after `${ENV}` expansion, with the source offset of each key.
struct Expanded {
    values: toml::Table,
    offsets: HashMap<String, usize>,
}

impl Expanded {
    fn key_offset(&self, key: &str) -> Option<usize> {
        self.offsets.get(key).copied()
    }
}

fn expand_table(table: SpannedTable, cx: &mut Ctx<'_>) -> Expanded {
    let mut values = toml::Table::new();
    let mut offsets = HashMap::new();
    for (k, v) in table {
        let off = k.span().start;
        let value = expand_value(v.into_inner(), off, cx);
        offsets.insert(k.get_ref().clone(), off);
        values.insert(k.into_inner(), value);
    }
    Expanded { values, offsets }
}

fn expand_value(v: toml::Value, off: usize, cx: &mut Ctx<'_>) -> toml::Value {
    match v {
        toml::Value::String(s) => {
            match expand_env(&s, env_or_default) {
                Ok(e) => toml::Value::String(e),
                Err(var) => {
                    cx.err(
                    Some(off),
                    format!("environment variable `{var}` is not set"),
                    Some(format!("set it (e.g. `export {var}=...`) or give a default: `${{{var}:-default}}`")),
                );
                    toml::Value::String(s)
                }
            }
        }
        toml::Value::Array(a) => {
            toml::Value::Array(a.into_iter().map(|x| expand_value(x, off, cx)).collect())
        }
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, x)| (k, expand_value(x, off, cx)))
                .collect(),
        ),
        other => other,
    }
}

/// An environment variable's value; `PROFUNDO_DATA` defaults to the data folder that
/// `profundo data fetch` fills (the platform's data directory), so a pipeline reads fetched
/// datasets without any variable set.
fn env_or_default(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            (key == profundo_data::DATA_ENV)
                .then(|| profundo_data::data_dir().display().to_string())
        })
}

/// Expands `${VAR}` and `${VAR:-default}`; `Err(VAR)` names an unset variable without default.
pub fn expand_env(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let body = &after[..end];
        let (var, default) = match body.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (body, None),
        };
        match (lookup(var).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(var.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `stage.param.sub=value` overrides grouped by stage (`pipeline` for the `[pipeline]` table).
fn parse_overrides(
    items: &[String],
    cx: &mut Ctx<'_>,
) -> BTreeMap<String, Vec<(Vec<String>, toml::Value)>> {
    let mut out: BTreeMap<String, Vec<(Vec<String>, toml::Value)>> = BTreeMap::new();
    for item in items {
        let Some((path, raw)) = item.split_once('=') else {
            cx.err(
                None,
                format!("--set `{item}`: expected `stage.param=value`"),
                None,
            );
            continue;
        };
        let mut parts: Vec<String> = path.trim().split('.').map(str::to_string).collect();
        if parts.len() == 1 {
            if ["name", "description", "seed", "backend", "device"].contains(&parts[0].as_str()) {
                parts.insert(0, "pipeline".into());
            } else {
                cx.err(
                    None,
                    format!("--set `{item}`: expected `stage.param=value`"),
                    Some("pipeline settings: seed, backend, device, name, description".into()),
                );
                continue;
            }
        }
        let stage = parts.remove(0);
        out.entry(stage)
            .or_default()
            .push((parts, parse_scalar(raw.trim())));
    }
    out
}

/// A `--set` value: TOML if it parses as a value, else a plain string.
fn parse_scalar(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
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
mod tests {
    use super::*;

    #[test]
    fn env_expansion_with_defaults() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(expand_env("${A}/y", env).unwrap(), "x/y");
        assert_eq!(expand_env("${B:-d}/${A}", env).unwrap(), "d/x");
        assert_eq!(expand_env("${B}", env).unwrap_err(), "B");
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
    }

    #[test]
    fn scalars_parse_as_toml_or_strings() {
        assert_eq!(parse_scalar("3"), toml::Value::Integer(3));
        assert_eq!(parse_scalar("0.5"), toml::Value::Float(0.5));
        assert_eq!(
            parse_scalar("[1, 2]"),
            toml::Value::Array(vec![1.into(), 2.into()])
        );
        assert_eq!(parse_scalar("tch"), toml::Value::String("tch".into()));
    }

    #[test]
    fn unknown_field_is_extracted() {
        assert_eq!(
            unknown_field("unknown field `epoch`, expected one of"),
            Some("epoch".into())
        );
        assert_eq!(unknown_field("invalid type"), None);
    }
}
