//! Text for `translate --input`: empty and whitespace lines, a 1 MB line, bytes that are not
//! UTF-8, right-to-left script and emoji, punctuation alone; and bad app parameters.

use super::{Case, Fixture, put};

pub fn cases(f: &Fixture) -> Vec<Case> {
    let translate = |extra: &[&str]| {
        let mut a = [
            "translate",
            "--model",
            &f.translate,
            "--from",
            "es",
            "--to",
            "en",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let file = |name: &str, bytes: &[u8]| put(f, "text", name, bytes);
    let mut cases = Vec::new();
    // A long line: a Spanish sentence repeated to 1 MB, with no line break.
    let sentence = "el perro come la comida de la casa y el gato duerme. ";
    let long = sentence.repeat((1 << 20) / sentence.len() + 1);
    let paragraph = sentence.repeat(40);
    let works: [(&str, Vec<u8>); 7] = [
        ("empty-line.txt", b"\n".to_vec()),
        ("whitespace.txt", b"   \t   \n".to_vec()),
        ("paragraph.txt", paragraph.into_bytes()),
        (
            "rtl-emoji.txt",
            "مرحبا بالعالم 👋🏽 שלום עולם 🐕\n".as_bytes().to_vec(),
        ),
        ("punctuation.txt", "¿?¡!...;;:--\n".as_bytes().to_vec()),
        ("nul.txt", b"hola\0mundo\n".to_vec()),
        ("crlf.txt", b"hola\r\nbuenos d\xc3\xadas\r\n".to_vec()),
    ];
    for (name, bytes) in &works {
        let path = file(name, bytes);
        cases.push(Case::works(
            &format!("text/{name}"),
            &translate(&["--input", &path]),
            &[],
        ));
    }
    // Longer than any sentence: refused, not translated in tens of thousands of pieces.
    let long = file("long-line.txt", long.as_bytes());
    cases.push(Case::refused(
        "text/long-line.txt",
        &translate(&["--input", &long]),
        &["long-line.txt", "line 1", "characters long"],
    ));
    let latin1 = file("latin1.txt", b"hola\nbuenos d\xedas\n");
    cases.push(Case::refused(
        "text/latin1.txt",
        &translate(&["--input", &latin1]),
        &["latin1.txt", "line 2", "UTF-8"],
    ));
    cases.push(Case::refused(
        "text/missing.txt",
        &translate(&["--input", "missing.txt"]),
        &["missing.txt", "No such file"],
    ));
    let folder = f.dir.join("text/folder.txt");
    std::fs::create_dir_all(&folder).unwrap();
    cases.push(Case::refused(
        "text/folder.txt",
        &translate(&["--input", folder.to_str().unwrap()]),
        &["folder.txt"],
    ));
    cases.push(Case::works("text/empty-argument", &translate(&[""]), &[]));
    cases.push(Case::refused(
        "text/beam-0",
        &translate(&["--beam", "0", "hola"]),
        &["beam"],
    ));
    cases.push(Case::refused(
        "text/unknown-language",
        &[
            "translate",
            "--model",
            &f.translate,
            "--from",
            "xx",
            "--to",
            "en",
            "hola",
        ],
        &["xx"],
    ));
    cases
}
