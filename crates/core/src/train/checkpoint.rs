//! Per-epoch checkpoints: model, optimizer and best model weights plus a `state.json` that is
//! written last, so a checkpoint is either complete or ignored.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use super::{EpochRecord, StopReason};
use crate::fsutil::{read_json, write_json_atomic};
use crate::{CoreError, Result};

/// Progress of a training run, as saved after every epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Epoch of the best model so far (0 = none).
    pub best_epoch: usize,
    /// Best (validation accuracy, -validation loss) so far.
    pub best: Option<(f64, f64)>,
    /// Training seconds spent so far, over all sessions.
    pub elapsed_s: f64,
    /// Metrics per epoch.
    pub history: Vec<EpochRecord>,
    /// Whether training has ended.
    pub finished: bool,
    /// Why it ended.
    pub stop: Option<StopReason>,
}

impl State {
    pub(super) fn best_score(&self) -> (f64, f64) {
        self.best.unwrap_or((f64::NEG_INFINITY, f64::NEG_INFINITY))
    }
}

/// Saves and restores checkpoints in one directory.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
}

impl Checkpointer {
    /// Checkpoints live in `dir` (created on first save).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn file(&self, kind: &str, epoch: usize) -> PathBuf {
        self.dir.join(format!("{kind}-{epoch}.bpk"))
    }

    /// The saved state, if a complete checkpoint exists.
    pub fn load_state(&self) -> Result<Option<State>> {
        let p = self.state_path();
        if !p.exists() {
            return Ok(None);
        }
        read_json(&p).map(Some)
    }

    /// Saves the state after an epoch; older epoch files are removed afterwards.
    pub fn save<M: Module>(
        &self,
        state: &State,
        model: &M,
        optim: &ModuleOptimizer,
        best: &M,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| CoreError::io(&self.dir, e))?;
        let e = state.epochs_done;
        save_atomic(&self.file("model", e), |p| {
            model.clone().into_record().save(p)
        })?;
        save_atomic(&self.file("optim", e), |p| optim.save(p))?;
        save_atomic(&self.file("best", e), |p| {
            best.clone().into_record().save(p)
        })?;
        write_json_atomic(&self.state_path(), state)?;
        // Only now is the new checkpoint the current one: drop the previous epoch's files.
        if e > 0 {
            for kind in ["model", "optim", "best"] {
                let _ = std::fs::remove_file(self.file(kind, e - 1));
            }
        }
        Ok(())
    }

    /// Loads model, optimizer and best-model weights of `state` into the given values.
    pub fn restore<M: Module>(
        &self,
        state: &State,
        model: M,
        optim: ModuleOptimizer,
        best: M,
    ) -> Result<(M, ModuleOptimizer, M)> {
        let e = state.epochs_done;
        let load = |path: PathBuf, m: M| -> Result<M> {
            let rec = ModuleRecord::load(&path).map_err(|err| weights_err(&path, "load", err))?;
            m.try_load_record(rec)
                .map_err(|err| weights_err(&path, "load", err))
        };
        let model = load(self.file("model", e), model)?;
        let best = load(self.file("best", e), best)?;
        let op = self.file("optim", e);
        let optim = optim
            .load(&op)
            .map_err(|err| weights_err(&op, "load", err))?;
        Ok((model, optim, best))
    }
}

fn weights_err(path: &Path, action: &'static str, err: impl std::fmt::Display) -> CoreError {
    CoreError::Weights {
        path: path.to_path_buf(),
        action,
        message: err.to_string(),
    }
}

fn save_atomic<E: std::fmt::Display>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let tmp = path.with_extension("bpk.partial");
    let _ = std::fs::remove_file(&tmp);
    write(&tmp).map_err(|e| weights_err(path, "save", e))?;
    std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
}
