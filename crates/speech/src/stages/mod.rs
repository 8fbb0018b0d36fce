//! Speech stage kinds: `speech.load_wav`, `speech.augment`, `speech.log_mel`, `speech.mfcc`.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_pipeline::ParamError;
use profundo_pipeline::artifacts::{FeatureSet, ItemMeta, Items};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::{Registry, StageError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{WaveAugmentConfig, augment_clip, speed_change, speed_view_name};
use crate::features::{Matrix, MelConfig};
use crate::input::{BandStats, FeatureConfig, Featurizer, Normalize};
use crate::resample::resample;
use crate::wav::read_wav;

mod features;
pub use features::{LogMel, Mfcc, SpectralParams};

mod augment;
pub use augment::{Augment, AugmentParams};

/// Registers the speech stages and the (uncached) `audio` artifact type.
pub fn register(reg: &mut Registry) {
    reg.uncached_artifact(AudioSet::TYPE)
        .stage::<LoadWav>()
        .stage::<Augment>()
        .stage::<LogMel>()
        .stage::<Mfcc>();
}

/// `audio`: clips in memory at one sample rate. Cheaper to re-read than to cache.
pub struct AudioSet {
    /// Item metadata and labels.
    pub items: Items,
    /// Mono samples per item.
    pub clips: Vec<Vec<f32>>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Fingerprint of the source data.
    pub fingerprint: String,
}

impl AudioSet {
    /// Artifact type name.
    pub const TYPE: &'static str = "audio";
}

impl Artifact for AudioSet {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, _dir: &Path) -> Result<(), StageError> {
        Ok(())
    }
    fn summary(&self) -> String {
        let secs: f64 =
            self.clips.iter().map(|c| c.len() as f64).sum::<f64>() / self.sample_rate as f64;
        format!(
            "{} clips ({:.0} s at {} Hz), {} labels, {} groups",
            self.clips.len(),
            secs,
            self.sample_rate,
            self.items.labels.len(),
            self.items.groups().len()
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn items(&self) -> Option<&Items> {
        Some(&self.items)
    }
}

/// The single `audio` input of the stages that transform clips.
const AUDIO_IN: &[Slot] = &[Slot {
    name: "audio",
    accepts: &[AudioSet::TYPE],
    optional: false,
}];

/// Parameters of `speech.load_wav`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadWavParams {
    /// Directory of WAV files.
    pub path: PathBuf,
    /// More directories read the same way and added to the set, e.g. synthetic voices for
    /// training (a split's `train_only_groups` keeps them out of every test set).
    #[serde(default)]
    pub extra_paths: Vec<PathBuf>,
    /// How file names (without `.wav`) encode metadata: `{label}` is required, `{group}`
    /// (e.g. the speaker) is used by group splits, other `{fields}` are kept.
    #[serde(default = "default_pattern")]
    pub name_pattern: String,
    /// Resample every clip to this rate (Hz).
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
    /// Stop if more than this fraction of files are unreadable or misnamed (they are
    /// skipped with a warning otherwise).
    #[serde(default = "default_bad")]
    pub max_bad_fraction: f64,
}

impl LoadWavParams {
    /// `path`, then the `extra_paths`, as written in the pipeline.
    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.path).chain(&self.extra_paths)
    }
}

fn default_pattern() -> String {
    "{label}_{group}_{take}".into()
}
fn default_rate() -> u32 {
    8000
}
fn default_bad() -> f64 {
    0.05
}

/// Loads a directory of labelled WAV clips.
pub struct LoadWav;

impl TypedStage for LoadWav {
    type Params = LoadWavParams;
    const KIND: &'static str = "speech.load_wav";
    const DOC: &'static str =
        "Read a directory of WAV clips; label and group come from the file names";
    const INPUTS: &'static [Slot] = &[];
    const OUTPUT: &'static str = AudioSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        let t =
            Template::parse(&p.name_pattern).map_err(|m| ParamError::rule("name_pattern", m))?;
        if !t.fields().any(|f| f == "label") {
            return Err(ParamError::rule("name_pattern", "must contain `{label}`"));
        }
        if !(1000..=192_000).contains(&p.sample_rate) {
            return Err(ParamError::rule(
                "sample_rate",
                format!("{} Hz is out of range (1000..=192000)", p.sample_rate),
            ));
        }
        if !(0.0..=1.0).contains(&p.max_bad_fraction) {
            return Err(ParamError::rule("max_bad_fraction", "must be in [0, 1]"));
        }
        Ok(())
    }

    fn reads(p: &Self::Params, pipeline_dir: &Path) -> Vec<PathBuf> {
        p.dirs()
            .map(|d| profundo_pipeline::registry::data_path(d, pipeline_dir))
            .collect()
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        _inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let dirs: Vec<PathBuf> = p.dirs().map(|d| ctx.resolve(d)).collect();
        let set = load_dirs(&dirs, p, ctx)?;
        ctx.log(&set.summary());
        Ok(Arc::new(set))
    }
}

/// The sorted `.wav` files of one dataset directory (an error if it has none).
fn wav_files(dir: &Path) -> Result<Vec<PathBuf>, StageError> {
    if !dir.is_dir() {
        return Err(StageError::data(
            dir,
            "dataset directory does not exist (check `path`, or set PROFUNDO_DATA)",
        ));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| StageError::data(dir, format!("cannot list directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(StageError::data(
            dir,
            "no .wav files in the dataset directory",
        ));
    }
    Ok(files)
}

/// Reads the clips of `dirs` (the first is `path`, for messages about the whole set).
fn load_dirs(
    dirs: &[PathBuf],
    p: &LoadWavParams,
    ctx: &mut StageContext,
) -> Result<AudioSet, StageError> {
    let dir = dirs[0].as_path();
    let mut files = Vec::new();
    for d in dirs {
        files.extend(wav_files(d)?);
    }
    // A clip's name is its file stem; two files with one stem would be one item twice.
    let mut stems = std::collections::HashSet::new();
    if let Some(dup) = files.iter().find(|f| !stems.insert(f.file_stem())) {
        return Err(StageError::data(
            dup,
            format!(
                "clip name `{}` occurs twice; names must be unique across `path` and `extra_paths`",
                dup.file_stem().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    let template = Template::parse(&p.name_pattern).map_err(StageError::Other)?;
    let results: Vec<Result<(ItemMeta, Vec<f32>), String>> = files
        .par_iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let fields = template.matches(&stem).ok_or_else(|| {
                format!(
                    "{}: file name does not match `{}`",
                    f.display(),
                    p.name_pattern
                )
            })?;
            let audio = read_wav(f).map_err(|e| e.to_string())?;
            let samples = resample(&audio.samples, audio.sample_rate, p.sample_rate)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            let mut fields = fields;
            let label = fields.remove("label").unwrap_or_default();
            let group = fields.remove("group").unwrap_or_default();
            Ok((
                ItemMeta {
                    name: stem,
                    source: None,
                    label,
                    group,
                    fields,
                    path: f.display().to_string(),
                    view: None,
                },
                samples,
            ))
        })
        .collect();
    let mut items = Vec::new();
    let mut clips = Vec::new();
    let mut bad = Vec::new();
    for r in results {
        match r {
            Ok((m, c)) => {
                items.push(m);
                clips.push(c);
            }
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        let frac = bad.len() as f64 / files.len() as f64;
        let shown: Vec<&str> = bad.iter().take(5).map(String::as_str).collect();
        let msg = format!(
            "{} of {} files skipped ({:.1}%):\n    {}{}",
            bad.len(),
            files.len(),
            100.0 * frac,
            shown.join("\n    "),
            if bad.len() > 5 { "\n    ..." } else { "" }
        );
        if frac > p.max_bad_fraction {
            return Err(StageError::data(
                dir,
                format!(
                    "too many bad files (limit max_bad_fraction = {}): {msg}",
                    p.max_bad_fraction
                ),
            ));
        }
        ctx.warn(&msg);
    }
    if items.is_empty() {
        return Err(StageError::data(dir, "no usable clips"));
    }
    let items = Items::new(items);
    let fingerprint = items.fingerprint();
    Ok(AudioSet {
        items,
        clips,
        sample_rate: p.sample_rate,
        fingerprint,
    })
}

/// A file-name template such as `{label}_{group}_{take}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Template {
    /// Parses a template; fields are `{name}`, everything else is literal.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` in `{s}`"))?;
                let name = &r[..end];
                if name.is_empty() {
                    return Err(format!("empty field `{{}}` in `{s}`"));
                }
                if matches!(parts.last(), Some(Part::Field(_))) {
                    return Err(format!("fields must be separated by literal text in `{s}`"));
                }
                parts.push(Part::Field(name.to_string()));
                rest = &r[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                parts.push(Part::Lit(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    /// Field names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Field values if `s` matches (each field takes the shortest non-empty text up to the
    /// next literal; the last field takes the rest).
    pub fn matches(&self, s: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut rest = s;
        let mut i = 0;
        while i < self.parts.len() {
            match &self.parts[i] {
                Part::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Field(f) => {
                    let value = match self.parts.get(i + 1) {
                        Some(Part::Lit(l)) => {
                            let at = rest.get(1..)?.find(l.as_str())? + 1;
                            let v = &rest[..at];
                            rest = &rest[at..];
                            v
                        }
                        _ => std::mem::take(&mut rest),
                    };
                    if value.is_empty() {
                        return None;
                    }
                    out.insert(f.clone(), value.to_string());
                }
            }
            i += 1;
        }
        rest.is_empty().then_some(out)
    }
}

#[cfg(test)]
mod tests;
