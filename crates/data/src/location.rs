//! Where datasets live: shipped ones under the repository's `datasets/`, the others in the
//! data folder (`$PROFUNDO_DATA`, else the platform's data directory, e.g.
//! `~/.local/share/profundo` on Linux).

use std::path::PathBuf;

use crate::catalog::Dataset;

/// The environment variable that names the data folder.
pub const DATA_ENV: &str = "PROFUNDO_DATA";
/// Set to `1` to make a test whose dataset is missing fail instead of skipping (CI sets it).
pub const REQUIRE_ENV: &str = "PROFUNDO_REQUIRE_DATA";

/// `$PROFUNDO_DATA` when it is set and not empty.
fn from_env() -> Option<PathBuf> {
    std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The data folder: `$PROFUNDO_DATA` when set and not empty, else `profundo` in the
/// platform's data directory, else `.profundo-data` in the current directory (no home).
pub fn data_dir() -> PathBuf {
    from_env().unwrap_or_else(|| {
        dirs::data_dir()
            .map(|d| d.join("profundo"))
            .unwrap_or_else(|| PathBuf::from(".profundo-data"))
    })
}

/// How [`data_dir`] was chosen, for messages: `$PROFUNDO_DATA` or `default`.
pub fn data_dir_origin() -> &'static str {
    if from_env().is_some() {
        "$PROFUNDO_DATA"
    } else {
        "default"
    }
}

/// Whether `PROFUNDO_REQUIRE_DATA` asks for every dataset to be present.
pub fn data_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The repository's `datasets/` folder: `./datasets` when the current directory is a
/// checkout (where the shipped pipelines read it from), else the checkout this binary was
/// built from.
pub fn shipped_dir() -> PathBuf {
    let here = PathBuf::from("datasets");
    if here.join("catalog.toml").is_file() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"))
}

impl Dataset {
    /// The folder this dataset is read from.
    pub fn location(&self) -> PathBuf {
        if self.shipped {
            shipped_dir().join(&self.path)
        } else {
            data_dir().join(&self.path)
        }
    }

    /// The command that gets this dataset, for messages.
    pub fn fetch_hint(&self) -> String {
        if self.shipped {
            format!("it ships with the repository under datasets/{}", self.path)
        } else {
            format!(
                "get it with `profundo data fetch {}` (or set {DATA_ENV} to a folder holding {})",
                self.name, self.path
            )
        }
    }
}
