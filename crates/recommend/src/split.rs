//! Train/test splits of interactions: the dataset's official folds, random by rating with a
//! seed (one hold-out or K folds), and per-user time-ordered leave-last-K-out. Every split
//! reports its sizes and how many test users and items were never seen in training.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::dataset::Interactions;
use crate::error::{RecommendError, Result};

/// How to split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitMethod {
    /// The dataset's own folds (MovieLens 100K `u1..u5`).
    Official {
        /// Which folds (default `u1..u5`).
        #[serde(default = "default_official")]
        folds: Vec<String>,
    },
    /// Random by rating, seeded: `folds = 1` holds out `test_fraction`; `folds = K > 1`
    /// partitions the ratings into K test folds.
    Random {
        /// Fraction held out when `folds = 1`.
        #[serde(default = "default_test_fraction")]
        test_fraction: f64,
        /// Number of folds.
        #[serde(default = "one")]
        folds: usize,
    },
    /// Each user's last `k` interactions by timestamp (ties by file order) are the test
    /// set; users with `k` or fewer interactions are kept whole in training.
    LeaveLast {
        /// Interactions per user held out.
        #[serde(default = "one")]
        k: usize,
    },
}

fn default_official() -> Vec<String> {
    ["u1", "u2", "u3", "u4", "u5"].map(String::from).to_vec()
}
fn default_test_fraction() -> f64 {
    0.2
}
fn one() -> usize {
    1
}

impl SplitMethod {
    /// Checks the settings.
    pub fn check(&self) -> Result<()> {
        match self {
            SplitMethod::Official { folds } if folds.is_empty() => {
                Err(RecommendError::Config("folds: name at least one".into()))
            }
            SplitMethod::Random {
                test_fraction,
                folds,
            } => {
                if *folds == 0 {
                    Err(RecommendError::Config("folds: must be at least 1".into()))
                } else if *folds == 1 && !(*test_fraction > 0.0 && *test_fraction < 1.0) {
                    Err(RecommendError::Config(format!(
                        "test_fraction: must be in (0, 1), got {test_fraction}"
                    )))
                } else {
                    Ok(())
                }
            }
            SplitMethod::LeaveLast { k: 0 } => {
                Err(RecommendError::Config("k: must be at least 1".into()))
            }
            _ => Ok(()),
        }
    }
}

/// One train/test fold, as interaction rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingFold {
    /// Fold name.
    pub name: String,
    /// Training rows.
    pub train: Vec<u32>,
    /// Test rows.
    pub test: Vec<u32>,
}

/// Sizes of a fold and what its test part holds that training never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldStats {
    /// Fold name.
    pub fold: String,
    /// Training interactions.
    pub train: usize,
    /// Test interactions.
    pub test: usize,
    /// Users with a test interaction.
    pub test_users: usize,
    /// Test users with no training interaction (cold start).
    pub cold_users: usize,
    /// Items with a test interaction.
    pub test_items: usize,
    /// Test items with no training interaction.
    pub cold_items: usize,
    /// Test interactions whose user or item is cold.
    pub cold_rows: usize,
}

impl RatingFold {
    /// The fold's statistics.
    pub fn stats(&self, d: &Interactions) -> FoldStats {
        let train_users: HashSet<u32> = self.train.iter().map(|&r| d.user[r as usize]).collect();
        let train_items: HashSet<u32> = self.train.iter().map(|&r| d.item[r as usize]).collect();
        let test_users: HashSet<u32> = self.test.iter().map(|&r| d.user[r as usize]).collect();
        let test_items: HashSet<u32> = self.test.iter().map(|&r| d.item[r as usize]).collect();
        FoldStats {
            fold: self.name.clone(),
            train: self.train.len(),
            test: self.test.len(),
            test_users: test_users.len(),
            cold_users: test_users.difference(&train_users).count(),
            test_items: test_items.len(),
            cold_items: test_items.difference(&train_items).count(),
            cold_rows: self
                .test
                .iter()
                .filter(|&&r| {
                    !train_users.contains(&d.user[r as usize])
                        || !train_items.contains(&d.item[r as usize])
                })
                .count(),
        }
    }
}

/// Splits `d` by `method`; `seed` drives the random method.
pub fn split(d: &Interactions, method: &SplitMethod, seed: u64) -> Result<Vec<RatingFold>> {
    method.check()?;
    let n = d.len() as u32;
    match method {
        SplitMethod::Official { folds } => folds
            .iter()
            .map(|name| {
                d.official_folds
                    .iter()
                    .find(|f| &f.name == name)
                    .map(|f| RatingFold {
                        name: f.name.clone(),
                        train: f.train.clone(),
                        test: f.test.clone(),
                    })
                    .ok_or_else(|| {
                        let have: Vec<&str> =
                            d.official_folds.iter().map(|f| f.name.as_str()).collect();
                        RecommendError::Config(format!(
                            "the dataset has no official fold `{name}` (it has: {})",
                            if have.is_empty() {
                                "none".to_string()
                            } else {
                                have.join(", ")
                            }
                        ))
                    })
            })
            .collect(),
        SplitMethod::Random {
            test_fraction,
            folds,
        } => {
            let mut rows: Vec<u32> = (0..n).collect();
            rows.shuffle(&mut StdRng::seed_from_u64(seed));
            if *folds == 1 {
                let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n as usize);
                let (test, train) = rows.split_at(n_test);
                let mut train = train.to_vec();
                let mut test = test.to_vec();
                train.sort_unstable();
                test.sort_unstable();
                return Ok(vec![RatingFold {
                    name: "test".into(),
                    train,
                    test,
                }]);
            }
            Ok((0..*folds)
                .map(|k| {
                    let (mut train, mut test) = (Vec::new(), Vec::new());
                    for (pos, &r) in rows.iter().enumerate() {
                        if pos % folds == k {
                            test.push(r);
                        } else {
                            train.push(r);
                        }
                    }
                    train.sort_unstable();
                    test.sort_unstable();
                    RatingFold {
                        name: format!("fold-{}", k + 1),
                        train,
                        test,
                    }
                })
                .collect())
        }
        SplitMethod::LeaveLast { k } => {
            let all: Vec<u32> = (0..n).collect();
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for mut rows in d.rows_by_user(&all) {
                rows.sort_by_key(|&r| (d.time[r as usize], r));
                let cut = if rows.len() > *k {
                    rows.len() - k
                } else {
                    rows.len()
                };
                train.extend_from_slice(&rows[..cut]);
                test.extend_from_slice(&rows[cut..]);
            }
            train.sort_unstable();
            test.sort_unstable();
            Ok(vec![RatingFold {
                name: format!("last-{k}"),
                train,
                test,
            }])
        }
    }
}

/// Cuts a seeded random `fraction` of `train` rows out as a validation set: `(fit, valid)`.
pub fn cut_validation(train: &[u32], fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    if fraction <= 0.0 || train.len() < 2 {
        return (train.to_vec(), Vec::new());
    }
    let mut rows = train.to_vec();
    rows.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x05EE_D0F7_A11D));
    let n_valid = ((rows.len() as f64 * fraction).round() as usize).clamp(1, rows.len() - 1);
    let mut valid = rows[..n_valid].to_vec();
    let mut fit = rows[n_valid..].to_vec();
    valid.sort_unstable();
    fit.sort_unstable();
    (fit, valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RawTable;

    fn data() -> Interactions {
        // Three users: u1 has 3 ratings, u2 has 2, u3 has 1; times out of file order.
        let rows = [
            ("u1", "a", 10),
            ("u1", "b", 30),
            ("u1", "c", 20),
            ("u2", "a", 5),
            ("u2", "c", 6),
            ("u3", "d", 1),
        ];
        Interactions::from_raw(
            &RawTable {
                path: "t".into(),
                users: rows.iter().map(|r| r.0).collect::<Vec<_>>().into(),
                items: rows.iter().map(|r| r.1).collect::<Vec<_>>().into(),
                ratings: vec![3.0; rows.len()],
                times: rows.iter().map(|r| r.2).collect(),
                explicit: true,
            },
            None,
        )
    }

    #[test]
    fn leave_last_takes_each_users_latest_and_keeps_short_histories() {
        let d = data();
        let f = &split(&d, &SplitMethod::LeaveLast { k: 1 }, 0).unwrap()[0];
        // u1's latest is b (t=30, row 1); u2's is c (row 4); u3 has one rating: kept.
        assert_eq!(f.test, vec![1, 4]);
        assert_eq!(f.train, vec![0, 2, 3, 5]);
        let s = f.stats(&d);
        // Item b was only ever rated by u1, last: it is never seen in training.
        assert_eq!((s.test_users, s.cold_users, s.cold_items), (2, 0, 1));
    }

    #[test]
    fn random_folds_partition_the_rows_and_are_seeded() {
        let d = data();
        let m = SplitMethod::Random {
            test_fraction: 0.2,
            folds: 3,
        };
        let a = split(&d, &m, 7).unwrap();
        assert_eq!(a, split(&d, &m, 7).unwrap());
        let mut all: Vec<u32> = a.iter().flat_map(|f| f.test.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
        for f in &a {
            assert_eq!(f.train.len() + f.test.len(), 6);
        }
    }

    #[test]
    fn stats_count_cold_users_and_items() {
        let d = data();
        let f = RatingFold {
            name: "x".into(),
            train: vec![0, 1, 2, 3],
            test: vec![4, 5],
        };
        let s = f.stats(&d);
        // Row 5 (u3, d): both user and item unseen; row 4 (u2, c) is warm.
        assert_eq!(
            (
                s.test_users,
                s.cold_users,
                s.test_items,
                s.cold_items,
                s.cold_rows
            ),
            (2, 1, 2, 1, 1)
        );
    }

    #[test]
    fn a_missing_official_fold_is_named() {
        let err = split(
            &data(),
            &SplitMethod::Official {
                folds: vec!["u1".into()],
            },
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no official fold `u1`"), "{err}");
    }
}
