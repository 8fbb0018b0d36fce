//! Pipeline parsing and validation tests.

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
