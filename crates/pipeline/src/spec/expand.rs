//! `${VAR}` expansion of stage tables (with the offsets of their keys, for errors) and
//! `--set stage.param=value` overrides.

use super::*;

/// A stage table after `${ENV}` expansion, with the source offset of each key.
pub(super) struct Expanded {
    pub(super) values: toml::Table,
    pub(super) offsets: HashMap<String, usize>,
}

impl Expanded {
    pub(super) fn key_offset(&self, key: &str) -> Option<usize> {
        self.offsets.get(key).copied()
    }
}

pub(super) fn expand_table(table: SpannedTable, cx: &mut Ctx<'_>) -> Expanded {
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

pub(super) fn expand_value(v: toml::Value, off: usize, cx: &mut Ctx<'_>) -> toml::Value {
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
pub(super) fn env_or_default(key: &str) -> Option<String> {
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
pub(super) fn parse_overrides(
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
pub(super) fn parse_scalar(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

pub(super) fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
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
