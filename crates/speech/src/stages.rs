//! Speech stage kinds: `speech.load_wav`, `speech.augment`, `speech.log_mel`, `speech.mfcc`.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        let t = Template::parse(&p.name_pattern).map_err(|m| ("name_pattern".to_string(), m))?;
        if !t.fields().any(|f| f == "label") {
            return Err(("name_pattern".into(), "must contain `{label}`".into()));
        }
        if !(1000..=192_000).contains(&p.sample_rate) {
            return Err((
                "sample_rate".into(),
                format!("{} Hz is out of range (1000..=192000)", p.sample_rate),
            ));
        }
        if !(0.0..=1.0).contains(&p.max_bad_fraction) {
            return Err(("max_bad_fraction".into(), "must be in [0, 1]".into()));
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

/// Parameters of `speech.augment`.
pub type AugmentParams = WaveAugmentConfig;

/// Adds augmented copies of every clip (originals kept; copies point at their original so
/// splits keep them on the same side), and a test-time view of every original clip at each
/// of `test_speeds` (never trained on; predictions average a clip and its views).
pub struct Augment;

impl TypedStage for Augment {
    type Params = AugmentParams;
    const KIND: &'static str = "speech.augment";
    const DOC: &'static str =
        "Add augmented copies of every clip (speed, gain, shift, noise) and test-time views";
    const INPUTS: &'static [Slot] = AUDIO_IN;
    const OUTPUT: &'static str = AudioSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        let ordered = |r: Option<[f32; 2]>| r.is_none_or(|[a, b]| a <= b);
        if let Some([a, _]) = p.speed
            && a <= 0.2
        {
            return Err(("speed".into(), "factors must be > 0.2".into()));
        }
        if let Some(f) = p.test_speeds.iter().find(|f| !(0.2..=5.0).contains(*f)) {
            return Err((
                "test_speeds".into(),
                format!("factors must be in [0.2, 5], got {f}"),
            ));
        }
        for (name, r) in [
            ("speed", p.speed),
            ("gain_db", p.gain_db),
            ("noise_snr_db", p.noise_snr_db),
        ] {
            if !ordered(r) {
                return Err((name.into(), "expected [min, max] with min <= max".into()));
            }
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let a: &AudioSet = input(inputs, 0)?;
        let seed = ctx.seed;
        let jobs: Vec<(usize, usize)> = (0..a.clips.len())
            .flat_map(|i| (0..p.copies).map(move |k| (i, k)))
            .collect();
        let copies: Vec<Result<Vec<f32>, StageError>> = jobs
            .par_iter()
            .map(|&(i, k)| {
                let mut rng = StdRng::seed_from_u64(
                    seed ^ ((i as u64) << 20) ^ (k as u64).wrapping_mul(0x9E37_79B9),
                );
                augment_clip(&a.clips[i], a.sample_rate, p, &mut rng).map_err(StageError::from)
            })
            .collect();
        let mut items = a.items.items.clone();
        let mut clips = a.clips.clone();
        for (&(i, k), c) in jobs.iter().zip(copies) {
            let orig = &a.items.items[i];
            items.push(ItemMeta {
                name: format!("{}#aug{k}", orig.name),
                source: Some(orig.name.clone()),
                ..orig.clone()
            });
            clips.push(c?);
        }
        let view_jobs: Vec<(usize, usize)> = (0..a.clips.len())
            .filter(|&i| !a.items.items[i].is_augmented())
            .flat_map(|i| (0..p.test_speeds.len()).map(move |k| (i, k)))
            .collect();
        let views: Vec<Result<Vec<f32>, StageError>> = view_jobs
            .par_iter()
            .map(|&(i, k)| {
                speed_change(&a.clips[i], a.sample_rate, p.test_speeds[k]).map_err(StageError::from)
            })
            .collect();
        for (&(i, k), v) in view_jobs.iter().zip(views) {
            let orig = &a.items.items[i];
            items.push(ItemMeta {
                name: format!("{}#view{k}", orig.name),
                source: Some(orig.name.clone()),
                view: Some(speed_view_name(p.test_speeds[k])),
                ..orig.clone()
            });
            clips.push(v?);
        }
        ctx.log(&format!(
            "{} originals + {} augmented copies + {} test-time views",
            a.clips.len(),
            jobs.len(),
            view_jobs.len()
        ));
        Ok(Arc::new(AudioSet {
            items: Items::new(items),
            clips,
            sample_rate: a.sample_rate,
            fingerprint: a.fingerprint.clone(),
        }))
    }
}

/// Parameters of `speech.log_mel` and `speech.mfcc`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SpectralParams {
    /// FFT size (= window length) in samples.
    pub n_fft: usize,
    /// Hop between frames in samples.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest mel band edge (Hz).
    pub f_min: f32,
    /// Highest mel band edge (Hz); default: half the sample rate.
    pub f_max: Option<f32>,
    /// Dynamic range kept in dB (librosa's `top_db`).
    pub top_db: Option<f32>,
    /// MFCC coefficients (`speech.mfcc` only; default 13).
    pub n_mfcc: Option<usize>,
    /// Fixed number of frames of the model input.
    pub frames: usize,
    /// Trim leading/trailing audio this many dB below the loudest frame (omit: no trim).
    pub trim_db: Option<f32>,
    /// Normalisation: `none`, `utterance`, `band` (per band over each clip's frames) or
    /// `speaker` (per band over all clips of the clip's group, the speaker).
    pub normalize: Normalize,
    /// With `normalize = "speaker"`: how many of each speaker's original clips (drawn with
    /// the pipeline seed) make its statistics; default: all of them. The statistics need
    /// no labels, so a new speaker's can come from a few recordings.
    pub speaker_clips: Option<usize>,
    /// Pre-emphasis coefficient (e.g. 0.97; omit: none), applied after trimming.
    pub pre_emphasis: Option<f32>,
}

impl Default for SpectralParams {
    fn default() -> Self {
        Self {
            n_fft: 256,
            hop_length: 128,
            n_mels: 40,
            f_min: 0.0,
            f_max: None,
            top_db: Some(80.0),
            n_mfcc: None,
            frames: 48,
            trim_db: Some(40.0),
            normalize: Normalize::Band,
            speaker_clips: None,
            pre_emphasis: None,
        }
    }
}

fn featurize(
    kind: &str,
    p: &SpectralParams,
    ctx: &mut StageContext,
    inputs: &[Option<Arc<dyn Artifact>>],
) -> Result<Arc<dyn Artifact>, StageError> {
    let a: &AudioSet = input(inputs, 0)?;
    let cfg = FeatureConfig {
        kind: kind.to_string(),
        mel: MelConfig {
            sample_rate: a.sample_rate,
            n_fft: p.n_fft,
            hop_length: p.hop_length,
            n_mels: p.n_mels,
            f_min: p.f_min,
            f_max: p.f_max,
            top_db: p.top_db,
        },
        n_mfcc: if kind == Mfcc::KIND {
            Some(p.n_mfcc.unwrap_or(13))
        } else {
            None
        },
        frames: p.frames,
        trim_db: p.trim_db,
        normalize: p.normalize,
        pre_emphasis: p.pre_emphasis,
    };
    let f = Featurizer::new(&cfg)?;
    let shape = f.shape();
    let rows: Vec<Vec<f32>> = if p.normalize == Normalize::Speaker {
        let (rows, used, speakers) = speaker_normalised(&f, a, p.speaker_clips, ctx.seed)?;
        ctx.log(&format!(
            "speaker statistics from {used} original clips of {speakers} speakers"
        ));
        rows
    } else {
        a.clips.par_iter().map(|c| f.compute(c)).collect()
    };
    let data: Vec<f32> = rows.into_iter().flatten().collect();
    ctx.log(&format!("{} items -> {:?} each", a.clips.len(), shape));
    Ok(Arc::new(FeatureSet {
        items: a.items.clone(),
        shape,
        data,
        extractor: serde_json::to_string(&cfg).map_err(|e| StageError::Other(e.to_string()))?,
        fingerprint: a.fingerprint.clone(),
    }))
}

/// Every clip normalised with its speaker's (group's) statistics, pooled over up to
/// `limit` of the speaker's original clips (drawn with `seed`; all when `None`). Augmented
/// copies use the statistics of their original's speaker; a test-time view (`speed=0.9`)
/// is normalised with the statistics of the speaker's clips in that same view, as the apps
/// normalise a speaker's clips played at that speed. Returns the inputs, how many clips
/// made the statistics and how many speakers there are.
fn speaker_normalised(
    f: &Featurizer,
    a: &AudioSet,
    limit: Option<usize>,
    seed: u64,
) -> Result<(Vec<Vec<f32>>, usize, usize), StageError> {
    let mats: Vec<Matrix> = a.clips.par_iter().map(|c| f.matrix(c)).collect();
    // (speaker, view): originals under no view, each test-time view apart.
    fn key(it: &ItemMeta) -> (&str, &str) {
        (it.group.as_str(), it.view.as_deref().unwrap_or(""))
    }
    let mut originals: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, it) in a.items.items.iter().enumerate() {
        if it.source.is_none() || it.is_view() {
            originals.entry(key(it)).or_default().push(i);
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut used = 0;
    let mut stats: BTreeMap<(&str, &str), BandStats> = BTreeMap::new();
    for ((group, view), mut idx) in originals {
        if let Some(n) = limit {
            idx.shuffle(&mut rng);
            idx.truncate(n);
        }
        if view.is_empty() {
            used += idx.len();
        }
        let s = BandStats::pool(idx.iter().map(|&i| &mats[i])).ok_or_else(|| {
            StageError::Other(format!(
                "speaker `{group}`: its clips hold no frames to normalise with"
            ))
        })?;
        stats.insert((group, view), s);
    }
    let speakers = stats.keys().filter(|(_, v)| v.is_empty()).count();
    let rows = mats
        .into_par_iter()
        .zip(&a.items.items)
        .map(|(m, it)| f.finish(m, stats.get(&key(it))))
        .collect();
    Ok((rows, used, speakers))
}

fn check_spectral(p: &SpectralParams, mfcc: bool) -> Result<(), (String, String)> {
    if !mfcc && p.n_mfcc.is_some() {
        return Err(("n_mfcc".into(), "applies to `speech.mfcc` only".into()));
    }
    if p.frames == 0 {
        return Err(("frames".into(), "must be positive".into()));
    }
    match (p.speaker_clips, p.normalize) {
        (Some(0), _) => return Err(("speaker_clips".into(), "must be positive".into())),
        (Some(_), n) if n != Normalize::Speaker => {
            return Err((
                "speaker_clips".into(),
                "applies to `normalize = \"speaker\"` only".into(),
            ));
        }
        _ => {}
    }
    if p.pre_emphasis.is_some_and(|a| !(0.0..1.0).contains(&a)) {
        return Err(("pre_emphasis".into(), "must be in [0, 1)".into()));
    }
    if p.n_fft < 16 || p.hop_length == 0 || p.n_mels == 0 {
        return Err((
            "n_fft".into(),
            "n_fft must be >= 16; hop_length and n_mels positive".into(),
        ));
    }
    Ok(())
}

/// Log-mel spectrogram features.
pub struct LogMel;

impl TypedStage for LogMel {
    type Params = SpectralParams;
    const KIND: &'static str = "speech.log_mel";
    const DOC: &'static str =
        "Log-mel spectrogram (librosa-compatible), trimmed, normalised, fixed frames";
    const INPUTS: &'static [Slot] = AUDIO_IN;
    const OUTPUT: &'static str = FeatureSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        check_spectral(p, false)
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        featurize(Self::KIND, p, ctx, inputs)
    }
}

/// MFCC features.
pub struct Mfcc;

impl TypedStage for Mfcc {
    type Params = SpectralParams;
    const KIND: &'static str = "speech.mfcc";
    const DOC: &'static str =
        "MFCC (librosa-compatible DCT-II of the log-mel spectrogram), fixed frames";
    const INPUTS: &'static [Slot] = AUDIO_IN;
    const OUTPUT: &'static str = FeatureSet::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        check_spectral(p, true)
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        featurize(Self::KIND, p, ctx, inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_clips_needs_speaker_normalisation_and_a_positive_count() {
        let mut p = SpectralParams {
            speaker_clips: Some(20),
            ..SpectralParams::default()
        };
        let err = check_spectral(&p, true).unwrap_err();
        assert_eq!(err.0, "speaker_clips");
        assert!(err.1.contains("speaker"), "{}", err.1);
        p.normalize = Normalize::Speaker;
        assert!(check_spectral(&p, true).is_ok());
        p.speaker_clips = Some(0);
        assert!(check_spectral(&p, true).is_err());
    }

    /// Two speakers' tones, two clips each, as the audio stage would load them.
    fn two_speakers() -> AudioSet {
        let mut items = Vec::new();
        let mut clips = Vec::new();
        for (g, base) in [("ann", 300.0f32), ("bob", 520.0)] {
            for k in 0..2 {
                items.push(ItemMeta {
                    name: format!("{k}_{g}_0"),
                    source: None,
                    label: k.to_string(),
                    group: g.into(),
                    fields: BTreeMap::new(),
                    path: format!("{k}_{g}_0.wav"),
                    view: None,
                });
                let f = base * (1.0 + k as f32);
                clips.push(
                    (0..4000)
                        .map(|i| 0.3 * (i as f32 * f * std::f32::consts::TAU / 8000.0).sin())
                        .collect(),
                );
            }
        }
        AudioSet {
            items: Items::new(items),
            clips,
            sample_rate: 8000,
            fingerprint: "test".into(),
        }
    }

    fn run_stage<S: TypedStage>(p: &S::Params, a: AudioSet) -> Arc<dyn Artifact> {
        let tmp = std::env::temp_dir();
        let mut ctx = StageContext::new(
            "t",
            7,
            profundo_core::backend::BackendKind::Flex,
            "cpu",
            tmp.clone(),
            tmp,
            None,
        );
        S::run(p, &mut ctx, &[Some(Arc::new(a) as Arc<dyn Artifact>)]).unwrap()
    }

    #[test]
    fn test_time_views_are_exact_speed_changes_of_the_originals() {
        let a = two_speakers();
        let p = AugmentParams {
            copies: 1,
            test_speeds: vec![0.9, 1.1],
            ..AugmentParams::default()
        };
        assert!(Augment::check(&p).is_ok());
        let out = run_stage::<Augment>(&p, two_speakers());
        let out = [Some(out)];
        let out: &AudioSet = input(&out, 0).unwrap();
        let items = &out.items.items;
        assert_eq!(items.len(), 4 + 4 + 8, "originals, copies, two views each");
        let views: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_view()).collect();
        assert_eq!(views.len(), 8);
        for &i in &views {
            let it = &items[i];
            let orig = a
                .items
                .items
                .iter()
                .position(|o| o.name == it.origin())
                .unwrap();
            let speed = crate::augment::parse_speed_view(it.view.as_deref().unwrap()).unwrap();
            assert_eq!(
                out.clips[i],
                speed_change(&a.clips[orig], 8000, speed).unwrap(),
                "{}",
                it.name
            );
            assert_eq!(
                (&it.label, &it.group),
                (&a.items.items[orig].label, &a.items.items[orig].group)
            );
        }
        let bad = AugmentParams {
            test_speeds: vec![0.1],
            ..AugmentParams::default()
        };
        assert_eq!(Augment::check(&bad).unwrap_err().0, "test_speeds");
    }

    #[test]
    fn a_speakers_view_is_normalised_with_that_views_statistics() {
        let p = AugmentParams {
            copies: 1,
            test_speeds: vec![0.8],
            ..AugmentParams::default()
        };
        let out = run_stage::<Augment>(&p, two_speakers());
        let out = [Some(out)];
        let viewed: &AudioSet = input(&out, 0).unwrap();
        // The same clips with every view turned into an original of its own speaker
        // `<speaker>|<view>`: per-speaker statistics there are what the view must get.
        let mut renamed = viewed.items.items.clone();
        for it in renamed.iter_mut().filter(|it| it.is_view()) {
            it.group = format!("{}|{}", it.group, it.view.take().unwrap());
            it.source = None;
        }
        let as_groups = AudioSet {
            items: Items::new(renamed),
            clips: viewed.clips.clone(),
            sample_rate: 8000,
            fingerprint: "test".into(),
        };
        let spectral = SpectralParams {
            normalize: Normalize::Speaker,
            ..SpectralParams::default()
        };
        let features = |a: &AudioSet| -> FeatureSet {
            let out = run_stage::<Mfcc>(
                &spectral,
                AudioSet {
                    items: a.items.clone(),
                    clips: a.clips.clone(),
                    sample_rate: 8000,
                    fingerprint: "test".into(),
                },
            );
            input::<FeatureSet>(&[Some(out)], 0).unwrap().clone()
        };
        // The views as plain augmented copies, which take their original's statistics.
        let mut copies = viewed.items.items.clone();
        copies.iter_mut().for_each(|it| it.view = None);
        let as_copies = AudioSet {
            items: Items::new(copies),
            clips: viewed.clips.clone(),
            sample_rate: 8000,
            fingerprint: "test".into(),
        };
        let a = features(viewed);
        assert_eq!(a.data, features(&as_groups).data);
        assert_ne!(a.data, features(&as_copies).data);
    }

    #[test]
    fn templates_parse_fsdd_names() {
        let t = Template::parse("{label}_{group}_{take}").unwrap();
        let m = t.matches("7_theo_12").unwrap();
        assert_eq!(
            (m["label"].as_str(), m["group"].as_str(), m["take"].as_str()),
            ("7", "theo", "12")
        );
        assert!(t.matches("7_theo").is_none());
        assert!(t.matches("_theo_1").is_none());
        assert!(Template::parse("{label}{group}").is_err());
        assert!(Template::parse("{label").is_err());
    }
}
