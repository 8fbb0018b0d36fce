//! Rating-table reading tests: formats, separators, bad rows.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(path: &Path, spec: &TableSpec) -> Result<RawTable> {
    let (file, format) = locate(path, spec.format)?;
    read_table(&file, format, spec)
}

#[test]
fn reads_the_three_text_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TableSpec::default();
    let t = read(
        &write(dir.path(), "u.data", "1\t10\t4\t100\n2\t10\t3\t90\n"),
        &spec,
    )
    .unwrap();
    assert_eq!(
        (t.users.clone(), t.items.clone()),
        (RawIds::Numeric(vec![1, 2]), RawIds::Numeric(vec![10, 10]))
    );
    assert_eq!(
        (t.ratings.clone(), t.times.clone()),
        (vec![4.0, 3.0], vec![100, 90])
    );
    let t = read(
        &write(dir.path(), "ratings.dat", "7::0120735::9::1363245118\n"),
        &spec,
    )
    .unwrap();
    // Numeric ids lose their leading zeros: `0120735` is item 120735.
    assert_eq!(
        (t.users.get(0), t.items.get(0), t.ratings[0]),
        ("7".to_string(), "120735".to_string(), 9.0)
    );
    let t = read(
        &write(
            dir.path(),
            "r.csv",
            "userId,movieId,rating,timestamp\n1,2,3.5,5\n",
        ),
        &spec,
    )
    .unwrap();
    assert!(t.explicit && t.ratings[0] == 3.5 && t.times[0] == 5);
    // No rating column: implicit feedback, file order is time order.
    let t = read(
        &write(dir.path(), "i.csv", "user,item\na,b\nc,d\n"),
        &TableSpec {
            ids: IdKind::Text,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!t.explicit);
    assert_eq!(
        (t.ratings.clone(), t.times.clone()),
        (vec![1.0, 1.0], vec![0, 1])
    );
}

#[test]
fn reads_parquet_with_a_column_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let mut df = df!(
        "uid" => [1i64, 2, 2],
        "iid" => [5i64, 5, 6],
        "stars" => [4.0f64, 2.0, 5.0],
    )
    .unwrap();
    let f = std::fs::File::create(&path).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
    let spec = TableSpec {
        columns: Columns {
            user: Some("uid".into()),
            item: Some("iid".into()),
            rating: Some("stars".into()),
            timestamp: None,
        },
        ..Default::default()
    };
    let t = read(&path, &spec).unwrap();
    assert_eq!(t.users, RawIds::Numeric(vec![1, 2, 2]));
    assert_eq!(t.ratings, vec![4.0, 2.0, 5.0]);
}

#[test]
fn bad_tables_name_the_file_the_row_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TableSpec::default();
    let msg = |p: PathBuf, s: &TableSpec| read(&p, s).unwrap_err().to_string();
    let e = msg(write(dir.path(), "empty.csv", ""), &spec);
    assert!(e.contains("empty.csv") && e.contains("empty"), "{e}");
    let e = msg(write(dir.path(), "nocol.csv", "user,rating\n1,3\n"), &spec);
    assert!(
        e.contains("nocol.csv") && e.contains("missing required item column"),
        "{e}"
    );
    let e = msg(
        write(dir.path(), "named.csv", "user,item\n1,3\n"),
        &TableSpec {
            columns: Columns {
                rating: Some("stars".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert!(e.contains("missing column `stars`"), "{e}");
    let e = msg(
        write(dir.path(), "ids.csv", "user,item,rating\n1,2,3\nbob,2,3\n"),
        &spec,
    );
    assert!(
        e.contains("ids.csv")
            && e.contains("data row 2 (line 3)")
            && e.contains("`bob` is not an integer"),
        "{e}"
    );
    let scaled = TableSpec {
        scale: Some([1.0, 5.0]),
        ..Default::default()
    };
    let e = msg(
        write(dir.path(), "scale.csv", "user,item,rating\n1,2,3\n1,3,7\n"),
        &scaled,
    );
    assert!(
        e.contains("data row 2") && e.contains("rating 7 is outside the scale [1, 5]"),
        "{e}"
    );
    let e = msg(
        write(dir.path(), "nan.csv", "user,item,rating\n1,2,good\n"),
        &spec,
    );
    assert!(
        e.contains("column `rating`") && e.contains("not a number"),
        "{e}"
    );
    let e = msg(
        write(dir.path(), "hole.csv", "user,item,rating\n1,,3\n"),
        &spec,
    );
    assert!(
        e.contains("column `item`") && e.contains("missing value"),
        "{e}"
    );
    let e = msg(dir.path().join("absent.csv"), &spec);
    assert!(
        e.contains("absent.csv") && e.contains("no such file"),
        "{e}"
    );
    let e = msg(write(dir.path(), "junk.parquet", "not parquet"), &spec);
    assert!(e.contains("junk.parquet") && e.contains("Parquet"), "{e}");
}
