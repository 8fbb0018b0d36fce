//! File locks: one run per pipeline at a time, one process computing a stage at a time.

use super::*;

/// Opens `path` (creating it and its folder) and takes its exclusive lock, held while the
/// returned file lives; the operating system releases it when the process ends, however it
/// ends. When another process holds it, `busy` is called with the file first: it may read
/// who holds it and return an error instead of waiting.
pub(super) fn exclusive_lock(
    path: &Path,
    busy: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            busy(&mut file)?;
            file.lock()?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    Ok(file)
}

/// Holds the exclusive lock `<pipeline root>/.lock` while the returned file lives. The
/// holder writes `pid N` into the file so that a waiting run can say whom it waits for;
/// with `wait` false a held lock is a [`PipelineError::Locked`] naming the holder.
pub(super) fn lock_pipeline(root: &Path, wait: bool) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = root.join(".lock");
    let mut held_by = None;
    let locked = exclusive_lock(&path, |file| {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "another process".to_string(),
            h => h.to_string(),
        };
        if !wait {
            held_by = Some(holder);
            return Err(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        }
        tracing::warn!("waiting for the lock held by {holder} ({})", path.display());
        Ok(())
    });
    let io = |e| PipelineError::from(profundo_core::CoreError::io(&path, e));
    let mut file = match (locked, held_by) {
        (Ok(file), _) => file,
        (Err(_), Some(holder)) => {
            return Err(PipelineError::Locked {
                path: path.clone(),
                holder,
            });
        }
        (Err(e), None) => return Err(io(e)),
    };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "pid {}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

/// Holds an exclusive lock on `<cache dir>.lock` (released when dropped), waiting for
/// another process that holds it.
pub(super) fn lock_stage(
    dir: &Path,
    stage: &str,
) -> std::result::Result<std::fs::File, StageError> {
    let path = dir.with_extension("lock");
    exclusive_lock(&path, |_| {
        tracing::info!("[{stage}] another run is computing this stage; waiting for it");
        Ok(())
    })
    .map_err(|e| StageError::io(&path, e))
}
