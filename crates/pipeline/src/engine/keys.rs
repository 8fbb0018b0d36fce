//! Cache keys: what each stage's output depends on, hashed.

use super::*;

/// The encoding of cached artifacts, part of every cache key: bump it when an artifact's
/// stored form changes, so that caches written by an older build are recomputed rather than
/// misread. 2: items carry their test-time `view`. 3: typed model manifests (format 2);
/// metrics carry a summary, a domain and re-chosen thresholds; face embeddings are stored
/// centred and whitened when training fitted those. 4: recommenders carry the
/// hyper-parameter search that chose their settings.
pub(super) const CACHE_FORMAT: u32 = 4;

pub(super) fn compute_keys(p: &Pipeline) -> HashMap<String, String> {
    let mut keys: HashMap<String, String> = HashMap::new();
    let pipeline_dir = p.file.parent().map(Path::to_path_buf).unwrap_or_default();
    for st in &p.stages {
        let mut h = blake3::Hasher::new();
        h.update(profundo_core::VERSION.as_bytes());
        h.update(&CACHE_FORMAT.to_le_bytes());
        h.update(st.kind.as_bytes());
        h.update(canonical(&st.prepared.params_json()).as_bytes());
        h.update(format!("{}|{}|{}", p.meta.seed, p.meta.backend, p.meta.device).as_bytes());
        for i in st.inputs.iter() {
            match i {
                Some(name) => {
                    h.update(keys.get(name).map(String::as_str).unwrap_or("?").as_bytes())
                }
                None => h.update(b"-"),
            };
        }
        for path in st.prepared.reads(&pipeline_dir) {
            hash_path(&mut h, &path);
        }
        keys.insert(st.name.clone(), h.finalize().to_hex().to_string());
    }
    keys
}

/// JSON with sorted keys (serde_json's map is sorted), so equal parameters hash equally.
pub(super) fn canonical(v: &serde_json::Value) -> String {
    v.to_string()
}

/// Hashes a file's content, or a directory's files (sorted, with relative names).
pub fn hash_path(h: &mut blake3::Hasher, path: &Path) {
    if path.is_file() {
        h.update(path.to_string_lossy().as_bytes());
        // Streamed: a dataset file may be larger than memory.
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = std::io::copy(&mut f, h);
        }
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            hash_path(h, &e);
        }
    } else {
        h.update(b"missing:");
        h.update(path.to_string_lossy().as_bytes());
    }
}
