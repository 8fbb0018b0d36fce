//! `split.by_group` and `split.by_pattern`.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::artifacts::{Fold, Items, Split};
use crate::registry::ParamError;
use crate::registry::{Artifact, Slot, StageContext, TypedStage};

const ANY_ITEMS: &[Slot] = &[Slot {
    name: "data",
    accepts: &["*"],
    optional: false,
}];

fn items_of(inputs: &[Option<Arc<dyn Artifact>>]) -> Result<&Items, StageError> {
    let a = crate::registry::input_artifact(inputs, 0)?;
    a.items().ok_or_else(|| {
        StageError::Other(format!(
            "input of type `{}` has no labelled items to split",
            a.type_name()
        ))
    })
}

/// A split's `train_only_groups`: groups matching it (anchored at both ends) are training
/// data only, never held out and never a fold of their own.
struct TrainOnly(Option<regex::Regex>);

impl TrainOnly {
    fn new(pattern: &Option<String>) -> Result<Self, regex::Error> {
        let re = pattern
            .as_deref()
            .map(|p| regex::Regex::new(&format!("^(?:{p})$")));
        re.transpose().map(Self)
    }

    /// For `run`: the pattern was checked before, so an error here is unexpected.
    fn of(pattern: &Option<String>) -> Result<Self, StageError> {
        Self::new(pattern).map_err(|e| StageError::Other(format!("train_only_groups: {e}")))
    }

    fn contains(&self, group: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(group))
    }
}

fn check_train_only(pattern: &Option<String>) -> Result<(), ParamError> {
    TrainOnly::new(pattern).map(|_| ()).map_err(|e| {
        ParamError::rule(
            "train_only_groups",
            format!("invalid regular expression: {e}"),
        )
    })
}

/// Logs fold sizes, and how many test groups were never seen in training.
fn describe(ctx: &mut StageContext, items: &Items, split: &Split) {
    for f in &split.folds {
        let (train, test) = f.partition(&items.items);
        let train_groups: BTreeSet<&str> = train
            .iter()
            .map(|&i| items.items[i].group.as_str())
            .collect();
        let test_groups: BTreeSet<&str> = test
            .iter()
            .map(|&i| items.items[i].group.as_str())
            .collect();
        let unseen = test_groups
            .iter()
            .filter(|g| !train_groups.contains(*g))
            .count();
        ctx.log(&format!(
            "fold {}: {} train items, {} test items; {} of {} test groups unseen in training",
            f.name,
            train.len(),
            test.len(),
            unseen,
            test_groups.len()
        ));
    }
}

/// Parameters of `split.by_group`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ByGroupParams {
    /// Hold out these groups (e.g. speakers) as the test set: one fold.
    pub test_groups: Vec<String>,
    /// One fold per group, each holding that group out (leave-one-group-out).
    pub leave_one_out: bool,
    /// Group k-fold: shuffle the groups with the pipeline seed and deal them into this many
    /// folds; each fold holds its groups out (every group is tested exactly once).
    pub group_folds: usize,
    /// Regular expression (matching a whole group name): these groups are training data
    /// only, e.g. synthetic voices; they are never held out and make no fold.
    pub train_only_groups: Option<String>,
}

/// Splits by group (e.g. speaker): no test group is ever seen in training.
pub struct SplitByGroup;

impl TypedStage for SplitByGroup {
    type Params = ByGroupParams;
    const KIND: &'static str = "split.by_group";
    const DOC: &'static str =
        "Hold out whole groups (speakers, people): `test_groups` or `leave_one_out`";
    const INPUTS: &'static [Slot] = ANY_ITEMS;
    const OUTPUT: &'static str = Split::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        check_train_only(&p.train_only_groups)?;
        let chosen = usize::from(!p.test_groups.is_empty())
            + usize::from(p.leave_one_out)
            + usize::from(p.group_folds > 0);
        match chosen {
            0 => Err(ParamError::rule(
                "test_groups",
                "give `test_groups = [...]`, `leave_one_out = true` or `group_folds = K`",
            )),
            1 if p.group_folds == 1 => {
                Err(ParamError::rule("group_folds", "needs at least 2 folds"))
            }
            1 => Ok(()),
            _ => Err(ParamError::rule(
                "leave_one_out",
                "use only one of `test_groups`, `leave_one_out` and `group_folds`",
            )),
        }
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let items = items_of(inputs)?;
        let split = group_split(p, items, ctx.seed)?;
        describe(ctx, items, &split);
        Ok(Arc::new(split))
    }
}

/// The folds of `split.by_group` over `items` (`seed` shuffles groups for `group_folds`).
fn group_split(p: &ByGroupParams, items: &Items, seed: u64) -> Result<Split, StageError> {
    let train_only = TrainOnly::of(&p.train_only_groups)?;
    let groups: Vec<String> = items
        .groups()
        .into_iter()
        .filter(|g| !train_only.contains(g))
        .collect();
    let fold_for = |held: &[String]| Fold {
        name: held.join("+"),
        test: items
            .items
            .iter()
            .filter(|i| !i.is_augmented() && held.contains(&i.group))
            .map(|i| i.name.clone())
            .collect(),
    };
    let split = if p.group_folds > 0 {
        if groups.len() < p.group_folds {
            return Err(StageError::Other(format!(
                "group_folds = {} needs at least as many groups, found {}",
                p.group_folds,
                groups.len()
            )));
        }
        let mut shuffled = groups.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x6A0F));
        let folds = (0..p.group_folds)
            .map(|k| {
                let mut held: Vec<String> = shuffled
                    .iter()
                    .skip(k)
                    .step_by(p.group_folds)
                    .cloned()
                    .collect();
                held.sort();
                let mut f = fold_for(&held);
                f.name = format!("groups-{}", k + 1);
                f
            })
            .collect();
        Split {
            protocol: format!(
                "group {}-fold over {} groups (seed {})",
                p.group_folds,
                groups.len(),
                seed
            ),
            folds,
        }
    } else if p.leave_one_out {
        if groups.len() < 2 {
            return Err(StageError::Other(format!(
                "leave_one_out needs at least 2 groups, found {}",
                groups.len()
            )));
        }
        Split {
            protocol: format!("leave-one-group-out over {} groups", groups.len()),
            folds: groups
                .iter()
                .map(|g| fold_for(std::slice::from_ref(g)))
                .collect(),
        }
    } else {
        for g in &p.test_groups {
            if train_only.contains(g) {
                return Err(StageError::Other(format!(
                    "test group `{g}` matches train_only_groups"
                )));
            }
            if !groups.contains(g) {
                return Err(StageError::Other(format!(
                    "test group `{g}` does not occur in the data (groups: {})",
                    groups.join(", ")
                )));
            }
        }
        Split {
            protocol: format!("held-out groups: {}", p.test_groups.join(", ")),
            folds: vec![fold_for(&p.test_groups)],
        }
    };
    Ok(split)
}

/// Parameters of `split.by_pattern`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByPatternParams {
    /// Regular expression; items whose name matches are test items.
    pub test: String,
    /// Fold name.
    #[serde(default = "default_fold_name")]
    pub name: String,
    /// Regular expression (matching a whole group name): items of these groups are
    /// training data only, whatever their name.
    #[serde(default)]
    pub train_only_groups: Option<String>,
}

fn default_fold_name() -> String {
    "pattern".into()
}

/// Splits by a regular expression on item names (e.g. FSDD's "takes 0-4 are test").
pub struct SplitByPattern;

impl TypedStage for SplitByPattern {
    type Params = ByPatternParams;
    const KIND: &'static str = "split.by_pattern";
    const DOC: &'static str = "Test items are those whose name matches the regex `test`";
    const INPUTS: &'static [Slot] = ANY_ITEMS;
    const OUTPUT: &'static str = Split::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        check_train_only(&p.train_only_groups)?;
        regex::Regex::new(&p.test)
            .map(|_| ())
            .map_err(|e| ParamError::rule("test", format!("invalid regular expression: {e}")))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let items = items_of(inputs)?;
        let split = pattern_split(p, items)?;
        describe(ctx, items, &split);
        Ok(Arc::new(split))
    }
}

/// The one fold of `split.by_pattern` over `items`.
fn pattern_split(p: &ByPatternParams, items: &Items) -> Result<Split, StageError> {
    let re = regex::Regex::new(&p.test).map_err(|e| StageError::Other(e.to_string()))?;
    let train_only = TrainOnly::of(&p.train_only_groups)?;
    let test: BTreeSet<String> = items
        .items
        .iter()
        .filter(|i| !i.is_augmented() && re.is_match(&i.name))
        .filter(|i| !train_only.contains(&i.group))
        .map(|i| i.name.clone())
        .collect();
    if test.is_empty() {
        return Err(StageError::Other(format!(
            "pattern `{}` matches no item name",
            p.test
        )));
    }
    Ok(Split {
        protocol: format!("item names matching `{}` are test items", p.test),
        folds: vec![Fold {
            name: p.name.clone(),
            test,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::ItemMeta;

    /// Two clips of each of `groups`, named `{label}_{group}_{take}`.
    fn items(groups: &[&str]) -> Items {
        let items = groups
            .iter()
            .flat_map(|g| {
                (0..2).map(move |take| ItemMeta {
                    name: format!("1_{g}_{take}"),
                    source: None,
                    label: "1".into(),
                    group: g.to_string(),
                    fields: Default::default(),
                    path: format!("{g}/{take}.wav"),
                    view: None,
                })
            })
            .collect();
        Items::new(items)
    }

    #[test]
    fn test_time_views_are_never_trained_on_and_follow_their_test_items() {
        let mut data = items(&["ann", "bob"]);
        let originals = data.items.clone();
        for speed in ["speed=0.9", "speed=1.1"] {
            for o in &originals {
                data.items.push(ItemMeta {
                    name: format!("{}#{speed}", o.name),
                    source: Some(o.name.clone()),
                    view: Some(speed.into()),
                    ..o.clone()
                });
            }
        }
        let p = ByGroupParams {
            leave_one_out: true,
            ..Default::default()
        };
        let split = group_split(&p, &data, 1).unwrap();
        let all = &data.items;
        for f in &split.folds {
            let (train, test) = f.partition(all);
            assert_eq!(train.len(), 2, "the other speaker's originals only");
            assert!(train.iter().all(|&i| !all[i].is_view()));
            let views = crate::stages::test_views(all, &test);
            let names: Vec<&str> = views.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["speed=0.9", "speed=1.1"]);
            for (name, idx) in &views {
                for (&t, &v) in test.iter().zip(idx) {
                    assert_eq!(all[v].origin(), all[t].name, "aligned with the test items");
                    assert_eq!(all[v].view.as_deref(), Some(name.as_str()));
                }
            }
        }
        // A view missing for one test item is left out; with no test items, all are kept.
        let (_, test) = split.folds[0].partition(all);
        let partial: Vec<ItemMeta> = all
            .iter()
            .filter(|it| {
                !(it.origin() == all[test[0]].name && it.view.as_deref() == Some("speed=1.1"))
            })
            .cloned()
            .collect();
        let (_, test) = split.folds[0].partition(&partial);
        assert_eq!(crate::stages::test_views(&partial, &test).len(), 1);
        assert_eq!(crate::stages::test_views(&partial, &[]).len(), 2);
    }

    #[test]
    fn train_only_groups_make_no_fold_and_are_never_tested() {
        let data = items(&["ann", "bob", "tts01", "tts02"]);
        let p = ByGroupParams {
            leave_one_out: true,
            train_only_groups: Some("tts.*".into()),
            ..Default::default()
        };
        let split = group_split(&p, &data, 1).unwrap();
        let names: Vec<&str> = split.folds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
        for f in &split.folds {
            let (train, test) = f.partition(&data.items);
            assert_eq!(test.len(), 2);
            assert_eq!(
                train.len(),
                6,
                "the other speaker and both synthetic voices"
            );
        }
        // Without the setting, every group is a fold.
        let p = ByGroupParams {
            train_only_groups: None,
            ..p
        };
        assert_eq!(group_split(&p, &data, 1).unwrap().folds.len(), 4);
    }

    #[test]
    fn train_only_groups_match_whole_names_and_cannot_be_test_groups() {
        let data = items(&["ann", "tts01", "xtts01"]);
        let p = ByGroupParams {
            group_folds: 2,
            train_only_groups: Some("tts.*".into()),
            ..Default::default()
        };
        let split = group_split(&p, &data, 3).unwrap();
        let held: BTreeSet<String> = split.folds.iter().flat_map(|f| f.test.clone()).collect();
        assert!(
            held.contains("1_xtts01_0"),
            "anchored: `xtts01` is not train-only"
        );
        assert!(!held.iter().any(|n| n.contains("_tts01_")));
        let p = ByGroupParams {
            test_groups: vec!["tts01".into()],
            train_only_groups: Some("tts.*".into()),
            ..Default::default()
        };
        let err = group_split(&p, &data, 3).unwrap_err().to_string();
        assert!(err.contains("matches train_only_groups"), "{err}");
        assert!(check_train_only(&Some("(".into())).is_err());
    }

    #[test]
    fn pattern_split_leaves_train_only_groups_in_training() {
        let data = items(&["ann", "tts01"]);
        let p = ByPatternParams {
            test: "_0$".into(),
            name: "takes".into(),
            train_only_groups: Some("tts01".into()),
        };
        let split = pattern_split(&p, &data).unwrap();
        assert_eq!(split.folds[0].test.iter().collect::<Vec<_>>(), ["1_ann_0"]);
    }
}
