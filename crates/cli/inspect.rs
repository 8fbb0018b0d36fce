//! `profundo list`, `show` and `compare`.

use profundo_pipeline::run_dir::{self, RunStatus};

use crate::args::{CompareArgs, ListArgs, ShowArgs};

pub fn list(a: ListArgs) -> anyhow::Result<()> {
    let reg = crate::registry();
    let mut out = Vec::new();
    for k in reg.kinds() {
        let schema = serde_json::to_value(k.schema())?;
        let params = params_of(&schema);
        if a.json {
            out.push(serde_json::json!({
                "kind": k.name(), "doc": k.doc(), "output": k.output(),
                "inputs": k.inputs().iter().map(|s| serde_json::json!({"name": s.name, "accepts": s.accepts, "optional": s.optional})).collect::<Vec<_>>(),
                "params": params.iter().map(|p| serde_json::json!({"name": p.0, "type": p.1, "default": p.2, "doc": p.3})).collect::<Vec<_>>(),
            }));
            continue;
        }
        println!("{}  — {}", k.name(), k.doc());
        let inputs: Vec<String> = k
            .inputs()
            .iter()
            .map(|s| {
                format!(
                    "{}: {}{}",
                    s.name,
                    s.accepts.join("|"),
                    if s.optional { "?" } else { "" }
                )
            })
            .collect();
        println!(
            "    inputs: {}   output: {}",
            if inputs.is_empty() {
                "none".into()
            } else {
                inputs.join(", ")
            },
            k.output()
        );
        for (name, ty, default, doc) in params {
            let d = if default.is_null() {
                String::new()
            } else {
                format!(" = {default}")
            };
            println!("    {name}: {ty}{d}  {doc}");
        }
        println!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// (name, type, default, doc) of each top-level parameter in a JSON schema.
fn params_of(schema: &serde_json::Value) -> Vec<(String, String, serde_json::Value, String)> {
    let defs = schema.get("$defs").cloned().unwrap_or_default();
    let defaults = schema.get("default").cloned().unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| {
            let default = p
                .get("default")
                .cloned()
                .or_else(|| defaults.get(name).cloned())
                .unwrap_or_default();
            let doc = p
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .replace('\n', " ");
            (name.clone(), type_of(p, &defs), default, doc)
        })
        .collect()
}

fn type_of(p: &serde_json::Value, defs: &serde_json::Value) -> String {
    if let Some(r) = p.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or(r);
        if let Some(d) = defs.get(name) {
            if let Some(e) = d.get("enum").or_else(|| d.get("oneOf")) {
                let vals: Vec<String> = e
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.get("const").and_then(|c| c.as_str()).map(str::to_string))
                    })
                    .collect();
                if !vals.is_empty() {
                    return vals.join("|");
                }
            }
            return format!("table ({name})");
        }
        return name.to_string();
    }
    match p.get("type") {
        Some(serde_json::Value::String(t)) if t == "array" => {
            format!(
                "array of {}",
                p.get("items")
                    .map(|i| type_of(i, defs))
                    .unwrap_or_else(|| "values".into())
            )
        }
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join("|"),
        _ => p
            .get("anyOf")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| type_of(x, defs))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .unwrap_or_else(|| "value".into()),
    }
}

pub fn show(a: ShowArgs) -> anyhow::Result<()> {
    let status = RunStatus::load(&a.run)?;
    let metrics = run_dir::load_metrics(&a.run)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"status": status, "metrics": metrics})
            )?
        );
        return Ok(());
    }
    println!(
        "run {} of `{}`: {} (started {}, ended {})",
        status.run_id,
        status.pipeline,
        status.state,
        status.started,
        status.ended.as_deref().unwrap_or("-")
    );
    if let Some(e) = &status.error {
        println!("error: {e}");
    }
    println!("\nstages:");
    for s in &status.stages {
        println!(
            "  {:<14} {:<22} {:<8} {:>7.1}s",
            s.name, s.kind, s.outcome, s.seconds
        );
    }
    let settings = std::fs::read_to_string(a.run.join("pipeline.toml")).unwrap_or_default();
    println!("\nsettings (resolved pipeline):\n{settings}");
    println!("metrics:");
    for (k, v) in run_dir::flatten_metrics(&metrics) {
        if !k.contains(".confusion.") && !k.contains(".per_class.") {
            println!("  {k} = {v:.4}");
        }
    }
    Ok(())
}

pub fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let rows: Vec<_> = run_dir::compare(&a.a, &a.b)?
        .into_iter()
        .filter(|r| !r.metric.contains(".confusion.") && !r.metric.contains(".per_class."))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", run_dir::compare_markdown(&a.a, &a.b, &rows));
    }
    Ok(())
}
