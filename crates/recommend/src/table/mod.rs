//! Reading rating tables through polars: MovieLens 100K (`u.data`), MovieLens 1M/10M and
//! MovieTweetings `ratings.dat` (`::`-separated), CSV with a header (MovieLens
//! `ratings.csv`), and Parquet (scanned lazily, only the mapped columns are read).
//!
//! Every column is read as text (CSV) or as stored (Parquet) and converted here, so that a bad
//! value is reported with its file, data row and column instead of a parser's message.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{RecommendError, Result};

/// The layout of a rating file.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// From the path: a folder with `u.data` is `ml100k`, `*.dat` is `dat`, `*.parquet` is
    /// `parquet`, anything else `csv`; a folder with `ratings.dat` or `ratings.csv` is read
    /// as that file.
    #[default]
    Auto,
    /// MovieLens 100K: `u.data` (tab-separated `user item rating timestamp`), titles and
    /// genres from `u.item`, official folds `u1..u5`, `ua`, `ub`.
    Ml100k,
    /// `user::item::rating::timestamp` lines (MovieLens 1M/10M, MovieTweetings); titles and
    /// genres from `movies.dat` beside it.
    Dat,
    /// Delimited text; header and separator are settings; titles from `movies.csv` beside
    /// it when present (MovieLens `ratings.csv`).
    Csv,
    /// Apache Parquet, scanned lazily.
    Parquet,
}

/// Whether user and item ids are numbers or free text.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Integers (a non-numeric id is an error); `007` and `7` are the same id.
    #[default]
    Numeric,
    /// Any text.
    Text,
}

/// Which columns of a CSV or Parquet table hold what (defaults: MovieLens names and plain
/// names are both tried).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Columns {
    /// User id column (default: `user`, `userId`, `user_id`).
    pub user: Option<String>,
    /// Item id column (default: `item`, `itemId`, `item_id`, `movieId`, `movie_id`).
    pub item: Option<String>,
    /// Rating column (default: `rating` if present; without one every row is an implicit
    /// interaction with rating 1).
    pub rating: Option<String>,
    /// Timestamp column (default: `timestamp` if present; without one, file order is time
    /// order).
    pub timestamp: Option<String>,
}

/// How to read a rating table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TableSpec {
    /// The layout.
    pub format: Format,
    /// CSV: field separator (default `,`; `\t` for `.tsv`).
    pub separator: Option<char>,
    /// CSV: whether the first line names the columns (default true).
    pub header: Option<bool>,
    /// CSV/Parquet column names.
    pub columns: Columns,
    /// Whether ids are numbers or text.
    pub ids: IdKind,
    /// The rating scale `[min, max]`; a rating outside it is an error. Default: the range
    /// found in the data.
    pub scale: Option<[f32; 2]>,
}

/// One id column as read: integers stay integers (8 bytes a row, no string per row).
#[derive(Debug, Clone, PartialEq)]
pub enum RawIds {
    /// Numeric ids.
    Numeric(Vec<i64>),
    /// Text ids.
    Text(Vec<String>),
}

impl Default for RawIds {
    fn default() -> Self {
        RawIds::Numeric(Vec::new())
    }
}

impl RawIds {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            RawIds::Numeric(v) => v.len(),
            RawIds::Text(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of row `r` as text.
    pub fn get(&self, r: usize) -> String {
        match self {
            RawIds::Numeric(v) => v[r].to_string(),
            RawIds::Text(v) => v[r].clone(),
        }
    }
}

impl From<Vec<&str>> for RawIds {
    fn from(v: Vec<&str>) -> Self {
        RawIds::Text(v.into_iter().map(str::to_string).collect())
    }
}

/// A rating table as read, one entry per data row, ids still raw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTable {
    /// The file read.
    pub path: PathBuf,
    /// Raw user ids.
    pub users: RawIds,
    /// Raw item ids.
    pub items: RawIds,
    /// Ratings (1 for implicit data).
    pub ratings: Vec<f32>,
    /// Timestamps (the row number when the table has none).
    pub times: Vec<i64>,
    /// Whether the table had a rating column.
    pub explicit: bool,
}

impl RawTable {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The file that holds the ratings of `path` in `format`, and the resolved format.
pub fn locate(path: &Path, format: Format) -> Result<(PathBuf, Format)> {
    if !path.exists() {
        return Err(RecommendError::data(path, "no such file or folder"));
    }
    if path.is_dir() {
        let candidates = [
            ("u.data", Format::Ml100k),
            ("ratings.dat", Format::Dat),
            ("ratings.csv", Format::Csv),
            ("ratings.parquet", Format::Parquet),
        ];
        for (name, f) in candidates {
            let p = path.join(name);
            if p.is_file() && (format == Format::Auto || format == f) {
                return Ok((p, f));
            }
        }
        return Err(RecommendError::data(
            path,
            format!(
                "no rating file found for format {format:?} (looked for u.data, ratings.dat, ratings.csv, ratings.parquet)"
            ),
        ));
    }
    let resolved = match format {
        Format::Auto => {
            let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
            match name.as_deref() {
                Some("u.data") => Format::Ml100k,
                Some(n) if n.ends_with(".dat") => Format::Dat,
                Some(n) if n.ends_with(".parquet") || n.ends_with(".pq") => Format::Parquet,
                _ => Format::Csv,
            }
        }
        f => f,
    };
    Ok((path.to_path_buf(), resolved))
}

/// Reads the rating table at `path` (already located) in `format` (not `Auto`).
pub fn read_table(path: &Path, format: Format, spec: &TableSpec) -> Result<RawTable> {
    let meta = std::fs::metadata(path).map_err(|e| RecommendError::data(path, e.to_string()))?;
    if meta.len() == 0 {
        return Err(RecommendError::data(path, "the file is empty"));
    }
    let (df, names) = match format {
        Format::Ml100k => (
            read_delimited(path, b'\t', false)?,
            fixed_names([0, 1, 2, 3]),
        ),
        // `a::b::c::d` read with separator `:` gives a, "", b, "", c, "", d.
        Format::Dat => (
            read_delimited(path, b':', false)?,
            fixed_names([0, 2, 4, 6]),
        ),
        Format::Csv => {
            let tsv = path.extension().is_some_and(|e| e == "tsv");
            let sep = spec.separator.unwrap_or(if tsv { '\t' } else { ',' });
            if !sep.is_ascii() {
                return Err(RecommendError::Config(format!(
                    "separator must be one ASCII character, got `{sep}`"
                )));
            }
            let df = read_delimited(path, sep as u8, spec.header.unwrap_or(true))?;
            let names = mapped_names(path, &df, &spec.columns)?;
            (df, names)
        }
        Format::Parquet => read_parquet(path, &spec.columns)?,
        Format::Auto => return Err(RecommendError::Config("format not resolved".into())),
    };
    let n = df.height();
    if n == 0 || df.width() == 0 {
        return Err(RecommendError::data(path, "the table has no data rows"));
    }
    let header_lines = usize::from(format == Format::Csv && spec.header.unwrap_or(true));
    let mut conv = Converter {
        path,
        df,
        header_lines,
    };
    let users = conv.ids(&names.user, spec.ids)?;
    let items = conv.ids(&names.item, spec.ids)?;
    let (ratings, explicit) = match &names.rating {
        Some(c) => (conv.floats(c)?, true),
        None => (vec![1.0; n], false),
    };
    if let Some([lo, hi]) = spec.scale
        && let Some(row) = ratings.iter().position(|r| *r < lo || *r > hi)
    {
        return Err(conv.row_error(
            row,
            names.rating.as_deref().unwrap_or("rating"),
            format!("rating {} is outside the scale [{lo}, {hi}]", ratings[row]),
        ));
    }
    let times = match &names.timestamp {
        Some(c) => conv.ints(c)?,
        None => (0..n as i64).collect(),
    };
    Ok(RawTable {
        path: path.to_path_buf(),
        users,
        items,
        ratings,
        times,
        explicit,
    })
}

/// The columns of a table, by role.
struct Names {
    user: String,
    item: String,
    rating: Option<String>,
    timestamp: Option<String>,
}

fn fixed_names(idx: [usize; 4]) -> Names {
    let name = |i: usize| format!("column_{}", i + 1);
    Names {
        user: name(idx[0]),
        item: name(idx[1]),
        rating: Some(name(idx[2])),
        timestamp: Some(name(idx[3])),
    }
}

fn pick(
    path: &Path,
    present: &[String],
    role: &str,
    given: &Option<String>,
    aliases: &[&str],
    required: bool,
) -> Result<Option<String>> {
    if let Some(g) = given {
        return if present.contains(g) {
            Ok(Some(g.clone()))
        } else {
            Err(RecommendError::data(
                path,
                format!(
                    "missing column `{g}` (the {role} column); columns are: {}",
                    present.join(", ")
                ),
            ))
        };
    }
    let found = aliases
        .iter()
        .find(|a| present.iter().any(|p| p == *a))
        .map(|a| a.to_string());
    if found.is_none() && required {
        return Err(RecommendError::data(
            path,
            format!(
                "missing required {role} column (looked for {}; name it in `columns.{role}`); columns are: {}",
                aliases.join(", "),
                present.join(", ")
            ),
        ));
    }
    Ok(found)
}

fn mapped_names(path: &Path, df: &DataFrame, c: &Columns) -> Result<Names> {
    let present: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let req = |o: Option<String>| o.unwrap_or_default();
    Ok(Names {
        user: req(pick(
            path,
            &present,
            "user",
            &c.user,
            &["user", "userId", "user_id"],
            true,
        )?),
        item: req(pick(
            path,
            &present,
            "item",
            &c.item,
            &["item", "itemId", "item_id", "movieId", "movie_id"],
            true,
        )?),
        rating: pick(path, &present, "rating", &c.rating, &["rating"], false)?,
        timestamp: pick(
            path,
            &present,
            "timestamp",
            &c.timestamp,
            &["timestamp", "time"],
            false,
        )?,
    })
}

/// Refuses a file whose first 64 KiB hold a NUL byte: binary data (or a sparse file's
/// holes), not a delimited text table, which would otherwise be parsed to its end.
fn check_is_text(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = Vec::with_capacity(1 << 16);
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 16).read_to_end(&mut head))
        .map_err(|e| RecommendError::data(path, e.to_string()))?;
    match head.iter().position(|&b| b == 0) {
        Some(at) => Err(RecommendError::data(
            path,
            format!(
                "not a text table: a NUL byte at byte {at} (binary data; a Parquet file must \
                 end in .parquet)"
            ),
        )),
        None => Ok(()),
    }
}

fn read_delimited(path: &Path, sep: u8, header: bool) -> Result<DataFrame> {
    check_is_text(path)?;
    CsvReadOptions::default()
        .with_has_header(header)
        // Everything as text: values are converted (and reported) here.
        .with_infer_schema_length(Some(0))
        .map_parse_options(|o| o.with_separator(sep))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| RecommendError::data(path, format!("cannot read as delimited text: {e}")))
}

fn read_parquet(path: &Path, c: &Columns) -> Result<(DataFrame, Names)> {
    let err = |e: PolarsError| RecommendError::data(path, format!("cannot read Parquet: {e}"));
    let pl_path = PlRefPath::try_from_path(path).map_err(err)?;
    let mut lf = LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default()).map_err(err)?;
    let schema = lf.collect_schema().map_err(err)?;
    let probe = DataFrame::empty_with_schema(&schema);
    let names = mapped_names(path, &probe, c)?;
    let mut cols = vec![col(names.user.as_str()), col(names.item.as_str())];
    cols.extend(names.rating.iter().map(|r| col(r.as_str())));
    cols.extend(names.timestamp.iter().map(|t| col(t.as_str())));
    // Only the mapped columns are read (projection pushdown); the streaming engine keeps
    // memory to the columns being built.
    let df = lf
        .select(cols)
        .collect_with_engine(Engine::Streaming)
        .map_err(err)?
        .unwrap_single();
    Ok((df, names))
}

/// Converts columns with row-level errors; each column leaves the frame as it is converted,
/// so a large table is never held twice.
struct Converter<'a> {
    path: &'a Path,
    df: DataFrame,
    header_lines: usize,
}

impl Converter<'_> {
    fn row_error(&self, row: usize, column: &str, message: String) -> RecommendError {
        let line = format!(
            "data row {} (line {})",
            row + 1,
            row + 1 + self.header_lines
        );
        RecommendError::data(self.path, format!("{line}, column `{column}`: {message}"))
    }

    fn take(&mut self, name: &str) -> Result<Series> {
        self.df
            .drop_in_place(name)
            .map(|c| c.take_materialized_series())
            .map_err(|e| RecommendError::data(self.path, e.to_string()))
    }

    /// The first row whose value is missing, or could not be cast.
    fn check_cast(&self, name: &str, orig: &Series, cast: &Series, what: &str) -> Result<()> {
        let bad = cast.is_null();
        if let Some(row) = bad.iter().position(|b| b == Some(true)) {
            let value = match orig.get(row) {
                Ok(AnyValue::String(v)) => v.to_string(),
                Ok(v) => v.to_string(),
                Err(_) => String::new(),
            };
            let message = if orig.is_null().get(row) == Some(true) {
                "missing value".to_string()
            } else {
                format!("`{value}` is not {what}")
            };
            return Err(self.row_error(row, name, message));
        }
        Ok(())
    }

    fn cast(&mut self, name: &str, dtype: &DataType, what: &str) -> Result<Series> {
        let orig = self.take(name)?;
        let cast = orig
            .cast(dtype)
            .map_err(|e| RecommendError::data(self.path, format!("column `{name}`: {e}")))?;
        self.check_cast(name, &orig, &cast, what)?;
        Ok(cast)
    }

    fn ids(&mut self, name: &str, kind: IdKind) -> Result<RawIds> {
        match kind {
            IdKind::Numeric => Ok(RawIds::Numeric(self.ints(name)?)),
            IdKind::Text => {
                let s = self.cast(name, &DataType::String, "text")?;
                let ca = s
                    .str()
                    .map_err(|e| RecommendError::data(self.path, e.to_string()))?;
                Ok(RawIds::Text(
                    ca.iter()
                        .map(|v| v.unwrap_or_default().to_string())
                        .collect(),
                ))
            }
        }
    }

    fn ints(&mut self, name: &str) -> Result<Vec<i64>> {
        let s = self.cast(name, &DataType::Int64, "an integer")?;
        let ca = s
            .i64()
            .map_err(|e| RecommendError::data(self.path, e.to_string()))?;
        Ok(ca.iter().map(|v| v.unwrap_or_default()).collect())
    }

    fn floats(&mut self, name: &str) -> Result<Vec<f32>> {
        let s = self.cast(name, &DataType::Float64, "a number")?;
        let ca = s
            .f64()
            .map_err(|e| RecommendError::data(self.path, e.to_string()))?;
        let v: Vec<f32> = ca.iter().map(|v| v.unwrap_or_default() as f32).collect();
        if let Some(row) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.row_error(row, name, format!("{} is not a finite number", v[row])));
        }
        Ok(v)
    }
}

/// Writes a synthetic rating table of `rows` rows (`user`, `item`, `rating`, `timestamp`;
/// users and items drawn with a popularity skew) as Parquet in row groups of one million
/// rows, so that writing never holds the whole table. For benchmarks.
pub fn write_synthetic_parquet(
    path: &Path,
    rows: usize,
    users: i64,
    items: i64,
    seed: u64,
) -> Result<()> {
    use rand::{RngExt, SeedableRng};
    let err = |e: PolarsError| RecommendError::data(path, format!("cannot write Parquet: {e}"));
    // Written beside the destination and renamed at the end: an interrupted generation
    // leaves no table that looks complete.
    let partial = path.with_extension("parquet.partial");
    let file = std::fs::File::create(&partial)
        .map_err(|e| RecommendError::data(&partial, e.to_string()))?;
    let schema = Schema::from_iter([
        Field::new("user".into(), DataType::Int64),
        Field::new("item".into(), DataType::Int64),
        Field::new("rating".into(), DataType::Float64),
        Field::new("timestamp".into(), DataType::Int64),
    ]);
    let mut writer = ParquetWriter::new(file).batched(&schema).map_err(err)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chunk = 1_000_000;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        // Squaring a uniform draw skews ids towards small (popular) values.
        let mut skewed = |max: i64| -> Vec<i64> {
            (0..n)
                .map(|_| {
                    let u: f64 = rng.random_range(0.0..1.0);
                    (u * u * max as f64) as i64
                })
                .collect()
        };
        let u = skewed(users);
        let i = skewed(items);
        let r: Vec<f64> = (0..n).map(|k| 1.0 + ((k * 7 + done) % 5) as f64).collect();
        let t: Vec<i64> = (done..done + n).map(|k| k as i64).collect();
        let df = DataFrame::new(
            n,
            vec![
                Column::new("user".into(), u),
                Column::new("item".into(), i),
                Column::new("rating".into(), r),
                Column::new("timestamp".into(), t),
            ],
        )
        .map_err(err)?;
        writer.write_batch(&df).map_err(err)?;
        done += n;
    }
    writer.finish().map_err(err)?;
    drop(writer);
    std::fs::rename(&partial, path).map_err(|e| RecommendError::data(path, e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
