//! Interactions with dense ids: raw user and item ids mapped to `0..n` and back, item titles
//! and genres for display, duplicate `(user, item)` rows resolved, and the dataset's official
//! folds when it has them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecommendError, Result};
use crate::table::{Format, RawIds, RawTable, TableSpec, locate, read_table};

/// Raw ids in dense-index order, with the reverse lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdMap {
    /// Raw id of each dense index.
    pub raw: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl IdMap {
    /// An id map over `raw` (in that order).
    pub fn new(raw: Vec<String>) -> Self {
        let index = raw
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i as u32))
            .collect();
        Self { raw, index }
    }

    /// Rebuilds the lookup after deserialisation.
    pub fn reindex(&mut self) {
        *self = Self::new(std::mem::take(&mut self.raw));
    }

    /// Dense index of a raw id.
    pub fn get(&self, raw: &str) -> Option<u32> {
        self.index.get(raw).copied()
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// An official train/test fold shipped with a dataset (MovieLens `u1.base`/`u1.test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialFold {
    /// Fold name (`u1`).
    pub name: String,
    /// Rows (indices into the interactions) of the training part.
    pub train: Vec<u32>,
    /// Rows of the test part.
    pub test: Vec<u32>,
}

/// All interactions of a dataset, ids dense.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// Where it was read from.
    pub source: String,
    /// User ids.
    pub users: IdMap,
    /// Item ids.
    pub items: IdMap,
    /// User of each row.
    pub user: Vec<u32>,
    /// Item of each row.
    pub item: Vec<u32>,
    /// Rating of each row (1 for implicit feedback).
    pub rating: Vec<f32>,
    /// Timestamp of each row.
    pub time: Vec<i64>,
    /// Whether ratings are explicit (a rating column existed).
    pub explicit: bool,
    /// The rating scale `(min, max)`.
    pub scale: (f32, f32),
    /// Title of each item (empty when unknown).
    pub titles: Vec<String>,
    /// Genres of each item, `|`-separated (empty when unknown).
    pub genres: Vec<String>,
    /// Duplicate `(user, item)` rows dropped (the last one was kept).
    pub duplicates_dropped: usize,
    /// The dataset's own folds.
    pub official_folds: Vec<OfficialFold>,
}

impl Interactions {
    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Rebuilds id lookups after deserialisation.
    pub fn reindex(&mut self) {
        self.users.reindex();
        self.items.reindex();
    }

    /// Builds interactions from raw rows. Duplicate `(user, item)` rows keep the last one.
    pub fn from_raw(t: &RawTable, scale: Option<[f32; 2]>) -> Self {
        let (user, users) = intern(&t.users);
        let (item, items) = intern(&t.items);
        // Duplicates by sorting (user, item, row): 12 bytes a row, no hash map per row.
        let n = user.len();
        let key = |r: usize| (u64::from(user[r]) << 32) | u64::from(item[r]);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&r| (key(r as usize), r));
        let mut keep = vec![true; n];
        for w in order.windows(2) {
            if key(w[0] as usize) == key(w[1] as usize) {
                keep[w[0] as usize] = false;
            }
        }
        drop(order);
        let kept = |v: &[u32]| -> Vec<u32> {
            v.iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect()
        };
        let mut out = Interactions {
            source: t.path.display().to_string(),
            explicit: t.explicit,
            user: kept(&user),
            item: kept(&item),
            rating: t
                .ratings
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect(),
            time: t
                .times
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect(),
            ..Default::default()
        };
        out.duplicates_dropped = n - out.user.len();
        out.scale = match scale {
            Some([lo, hi]) => (lo, hi),
            None => out
                .rating
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r))),
        };
        out.titles = vec![String::new(); items.len()];
        out.genres = vec![String::new(); items.len()];
        out.users = users;
        out.items = items;
        out
    }

    /// Rows of each user, in row order.
    pub fn rows_by_user(&self, rows: &[u32]) -> Vec<Vec<u32>> {
        let mut by = vec![Vec::new(); self.users.len()];
        for &r in rows {
            by[self.user[r as usize] as usize].push(r);
        }
        by
    }

    /// A display name for item `i`: its title, else its raw id.
    pub fn item_name(&self, i: u32) -> &str {
        let t = &self.titles[i as usize];
        if t.is_empty() {
            &self.items.raw[i as usize]
        } else {
            t
        }
    }
}

/// Dense indices of raw ids (in order of first appearance) and the id map.
fn intern(ids: &RawIds) -> (Vec<u32>, IdMap) {
    let mut raw = Vec::new();
    let dense = match ids {
        RawIds::Numeric(v) => {
            let mut map: HashMap<i64, u32> = HashMap::new();
            v.iter()
                .map(|x| {
                    *map.entry(*x).or_insert_with(|| {
                        raw.push(x.to_string());
                        (raw.len() - 1) as u32
                    })
                })
                .collect()
        }
        RawIds::Text(v) => {
            let mut map: HashMap<&str, u32> = HashMap::new();
            v.iter()
                .map(|x| {
                    *map.entry(x.as_str()).or_insert_with(|| {
                        raw.push(x.clone());
                        (raw.len() - 1) as u32
                    })
                })
                .collect()
        }
    };
    (dense, IdMap::new(raw))
}

/// What [`load`] found, for logs.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The rating file read.
    pub ratings_file: PathBuf,
    /// The metadata file read, if any.
    pub metadata_file: Option<PathBuf>,
    /// Items of the metadata that had no rating.
    pub metadata_items: usize,
}

/// Loads a dataset: the rating table, item metadata beside it, and official folds.
pub fn load(path: &Path, spec: &TableSpec) -> Result<(Interactions, LoadReport)> {
    let (file, format) = locate(path, spec.format)?;
    let raw = read_table(&file, format, spec)?;
    let mut data = Interactions::from_raw(&raw, spec.scale);
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let meta = match format {
        Format::Ml100k => Some(dir.join("u.item")),
        Format::Dat => Some(dir.join("movies.dat")),
        Format::Csv => Some(dir.join("movies.csv")),
        _ => None,
    }
    .filter(|p| p.is_file());
    let mut metadata_items = 0;
    if let Some(m) = &meta {
        let rows = match format {
            Format::Ml100k => read_u_item(m, &dir.join("u.genre"))?,
            Format::Dat => read_movies_dat(m)?,
            _ => read_movies_csv(m)?,
        };
        for (raw_id, title, genres) in rows {
            let id = normalise_id(&raw_id, spec);
            match data.items.get(&id) {
                Some(i) => {
                    data.titles[i as usize] = title;
                    data.genres[i as usize] = genres;
                }
                None => metadata_items += 1,
            }
        }
    }
    if format == Format::Ml100k {
        data.official_folds = read_official_folds(&dir, &data, spec)?;
    }
    Ok((
        data,
        LoadReport {
            ratings_file: file,
            metadata_file: meta,
            metadata_items,
        },
    ))
}

fn normalise_id(raw: &str, spec: &TableSpec) -> String {
    match spec.ids {
        crate::table::IdKind::Numeric => raw
            .trim()
            .parse::<i64>()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| raw.trim().to_string()),
        crate::table::IdKind::Text => raw.to_string(),
    }
}

/// Text of a metadata file: UTF-8, else Latin-1 (MovieLens 100K and 1M use Latin-1).
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| RecommendError::data(path, e.to_string()))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

/// `u.item`: `id|title|release|video release|url|19 genre flags`, genre names from `u.genre`.
fn read_u_item(path: &Path, genre_file: &Path) -> Result<Vec<(String, String, String)>> {
    let genre_names: Vec<String> = if genre_file.is_file() {
        read_text(genre_file)?
            .lines()
            .filter_map(|l| l.split('|').next())
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for (n, line) in read_text(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 2 {
            return Err(RecommendError::data(
                path,
                format!("line {}: expected `id|title|...`", n + 1),
            ));
        }
        let genres: Vec<&str> = f
            .iter()
            .skip(5)
            .enumerate()
            .filter(|(_, v)| v.trim() == "1")
            .filter_map(|(g, _)| genre_names.get(g).map(String::as_str))
            .collect();
        out.push((f[0].to_string(), f[1].to_string(), genres.join("|")));
    }
    Ok(out)
}

/// `movies.dat`: `id::title::genre|genre`.
fn read_movies_dat(path: &Path) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for (n, line) in read_text(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.splitn(3, "::");
        let (Some(id), Some(title)) = (f.next(), f.next()) else {
            return Err(RecommendError::data(
                path,
                format!("line {}: expected `id::title::genres`", n + 1),
            ));
        };
        out.push((
            id.to_string(),
            title.to_string(),
            f.next().unwrap_or("").to_string(),
        ));
    }
    Ok(out)
}

/// `movies.csv` (MovieLens): `movieId,title,genres` with a header, read through polars.
fn read_movies_csv(path: &Path) -> Result<Vec<(String, String, String)>> {
    use polars::prelude::*;
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| RecommendError::data(path, format!("cannot read: {e}")))?;
    let text = |name: &str| -> Result<Vec<String>> {
        let c = df.column(name).map_err(|_| {
            RecommendError::data(path, format!("missing column `{name}` in item metadata"))
        })?;
        let s = c
            .str()
            .map_err(|e| RecommendError::data(path, e.to_string()))?;
        Ok(s.iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let ids = text("movieId")?;
    let titles = text("title")?;
    let genres = text("genres").unwrap_or_else(|_| vec![String::new(); ids.len()]);
    Ok(ids
        .into_iter()
        .zip(titles)
        .zip(genres)
        .map(|((a, b), c)| (a, b, c))
        .collect())
}

/// MovieLens 100K's `u1..u5` and `ua`/`ub` base/test files, as rows of `data`.
fn read_official_folds(
    dir: &Path,
    data: &Interactions,
    spec: &TableSpec,
) -> Result<Vec<OfficialFold>> {
    let mut row_of: HashMap<(u32, u32), u32> = HashMap::with_capacity(data.len());
    for r in 0..data.len() {
        row_of.insert((data.user[r], data.item[r]), r as u32);
    }
    let rows = |file: &Path| -> Result<Vec<u32>> {
        let t = read_table(file, Format::Ml100k, spec)?;
        (0..t.len())
            .map(|k| {
                let (user, item) = (t.users.get(k), t.items.get(k));
                let pair = data.users.get(&user).zip(data.items.get(&item));
                pair.and_then(|p| row_of.get(&p).copied()).ok_or_else(|| {
                    RecommendError::data(
                        file,
                        format!(
                            "data row {}: user {} / item {} is not in u.data",
                            k + 1,
                            user,
                            item
                        ),
                    )
                })
            })
            .collect()
    };
    let mut folds = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5", "ua", "ub"] {
        let base = dir.join(format!("{name}.base"));
        let test = dir.join(format!("{name}.test"));
        if base.is_file() && test.is_file() {
            folds.push(OfficialFold {
                name: name.into(),
                train: rows(&base)?,
                test: rows(&test)?,
            });
        }
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rows: &[(&str, &str, f32)]) -> RawTable {
        RawTable {
            path: "t.csv".into(),
            users: rows.iter().map(|r| r.0).collect::<Vec<_>>().into(),
            items: rows.iter().map(|r| r.1).collect::<Vec<_>>().into(),
            ratings: rows.iter().map(|r| r.2).collect(),
            times: (0..rows.len() as i64).collect(),
            explicit: true,
        }
    }

    #[test]
    fn ids_are_dense_and_duplicates_keep_the_last_row() {
        let d = Interactions::from_raw(
            &raw(&[("u1", "a", 1.0), ("u2", "a", 2.0), ("u1", "a", 5.0)]),
            None,
        );
        assert_eq!(d.users.raw, vec!["u1", "u2"]);
        assert_eq!(d.items.get("a"), Some(0));
        assert_eq!(d.duplicates_dropped, 1);
        assert_eq!(d.len(), 2);
        // The kept row for (u1, a) is the last one.
        let r = (0..d.len())
            .find(|&r| d.user[r] == 0 && d.item[r] == 0)
            .unwrap();
        assert_eq!(d.rating[r], 5.0);
        assert_eq!(d.scale, (2.0, 5.0));
    }
}
