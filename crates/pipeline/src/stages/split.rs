//! `split.by_group` and `split.by_pattern`.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::artifacts::{Fold, Items, Split};
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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        let chosen = usize::from(!p.test_groups.is_empty())
            + usize::from(p.leave_one_out)
            + usize::from(p.group_folds > 0);
        match chosen {
            0 => Err((
                "test_groups".into(),
                "give `test_groups = [...]`, `leave_one_out = true` or `group_folds = K`".into(),
            )),
            1 if p.group_folds == 1 => Err(("group_folds".into(), "needs at least 2 folds".into())),
            1 => Ok(()),
            _ => Err((
                "leave_one_out".into(),
                "use only one of `test_groups`, `leave_one_out` and `group_folds`".into(),
            )),
        }
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let items = items_of(inputs)?;
        let groups = items.groups();
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
            shuffled.shuffle(&mut StdRng::seed_from_u64(ctx.seed ^ 0x6A0F));
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
                    ctx.seed
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
        describe(ctx, items, &split);
        Ok(Arc::new(split))
    }
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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        regex::Regex::new(&p.test)
            .map(|_| ())
            .map_err(|e| ("test".into(), format!("invalid regular expression: {e}")))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let items = items_of(inputs)?;
        let re = regex::Regex::new(&p.test).map_err(|e| StageError::Other(e.to_string()))?;
        let test: BTreeSet<String> = items
            .items
            .iter()
            .filter(|i| !i.is_augmented() && re.is_match(&i.name))
            .map(|i| i.name.clone())
            .collect();
        if test.is_empty() {
            return Err(StageError::Other(format!(
                "pattern `{}` matches no item name",
                p.test
            )));
        }
        let split = Split {
            protocol: format!("item names matching `{}` are test items", p.test),
            folds: vec![Fold {
                name: p.name.clone(),
                test,
            }],
        };
        describe(ctx, items, &split);
        Ok(Arc::new(split))
    }
}
