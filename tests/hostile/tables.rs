//! Rating tables for `recommend.load_ratings` in a one-stage pipeline: missing columns,
//! ratings that are NaN, infinite, negative or words, duplicate rows, no rows, a 2 GB
//! sparse file, Parquet with the wrong column types.

use polars::prelude::*;

use super::{Case, Fixture, put};

/// A pipeline that only loads `path` (ratings on the scale 1..5).
fn load_pipeline(f: &Fixture, name: &str, path: &str) -> String {
    let stem = name.replace('.', "-");
    put(
        f,
        "tables",
        &format!("{stem}.toml"),
        format!(
            "[pipeline]\nname = \"hostile-{stem}\"\n\n[stages.ratings]\nkind = \
             \"recommend.load_ratings\"\npath = \"{path}\"\nscale = [1, 5]\n"
        )
        .as_bytes(),
    )
}

fn run(f: &Fixture, name: &str, path: &str) -> Vec<String> {
    let runs = f.dir.join("tables/runs");
    vec![
        "run".into(),
        load_pipeline(f, name, path),
        "--runs-dir".into(),
        runs.to_str().unwrap().to_string(),
    ]
}

fn rows(lines: &[&str]) -> Vec<u8> {
    let mut s = String::from("user,item,rating\n1,10,4\n2,10,3\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.into_bytes()
}

pub fn cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let refused: [(&str, Vec<u8>, &[&str]); 11] = [
        (
            "missing-column.csv",
            b"user,rating\n1,2\n".to_vec(),
            &["item"],
        ),
        ("nan.csv", rows(&["3,11,NaN"]), &["data row 3"]),
        ("inf.csv", rows(&["3,11,inf"]), &["data row 3"]),
        (
            "negative.csv",
            rows(&["3,11,-2"]),
            &["data row 3", "outside the scale"],
        ),
        ("word.csv", rows(&["3,11,good"]), &["data row 3", "rating"]),
        ("ragged.csv", rows(&["3,11"]), &[]),
        (
            "overflow-id.csv",
            rows(&["99999999999999999999999,11,3"]),
            &["data row 3"],
        ),
        (
            "header-only.csv",
            b"user,item,rating\n".to_vec(),
            &["no data rows"],
        ),
        ("empty.csv", Vec::new(), &["empty"]),
        (
            "binary.csv",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
            &[],
        ),
        ("not-parquet.parquet", rows(&[]), &["Parquet"]),
    ];
    for (name, bytes, needles) in &refused {
        let path = put(f, "tables", name, bytes);
        let mut n = vec![*name];
        n.extend_from_slice(needles);
        cases.push(Case::refused(
            &format!("tables/{name}"),
            &run(f, name, &path),
            &n,
        ));
    }

    // A header, then 2 GB of holes (a sparse file: no disk used): refused without reading
    // 2 GB into memory.
    let sparse = put(f, "tables", "sparse-2gb.csv", b"user,item,rating\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    cases.push(Case::refused(
        "tables/sparse-2gb.csv",
        &run(f, "sparse-2gb.csv", &sparse),
        &["sparse-2gb.csv"],
    ));

    // Parquet whose columns have the wrong types (ids and ratings as text).
    let parquet = f.dir.join("tables/wrong-types.parquet");
    let mut df = df!(
        "user" => ["alice", "bob"],
        "item" => [1.5f64, 2.5],
        "rating" => ["four", "two"],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&parquet).unwrap())
        .finish(&mut df)
        .unwrap();
    let parquet = parquet.to_str().unwrap();
    cases.push(Case::refused(
        "tables/wrong-types.parquet",
        &run(f, "wrong-types.parquet", parquet),
        &["wrong-types.parquet", "rating"],
    ));

    // Duplicate (user, item) rows are kept once, with a warning: this must work.
    let dup = put(f, "tables", "duplicates.csv", &rows(&["1,10,5", "3,11,2"]));
    cases.push(Case::works(
        "tables/duplicates.csv",
        &run(f, "duplicates.csv", &dup),
        &["duplicate"],
    ));
    cases
}
