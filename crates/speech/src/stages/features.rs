//! `speech.log_mel` and `speech.mfcc`: clips to fixed-size, normalised feature matrices.

use super::*;

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

pub(super) fn featurize(
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
pub(super) fn speaker_normalised(
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

pub(super) fn check_spectral(p: &SpectralParams, mfcc: bool) -> Result<(), ParamError> {
    if !mfcc && p.n_mfcc.is_some() {
        return Err(ParamError::rule("n_mfcc", "applies to `speech.mfcc` only"));
    }
    if p.frames == 0 {
        return Err(ParamError::rule("frames", "must be positive"));
    }
    match (p.speaker_clips, p.normalize) {
        (Some(0), _) => return Err(ParamError::rule("speaker_clips", "must be positive")),
        (Some(_), n) if n != Normalize::Speaker => {
            return Err(ParamError::rule(
                "speaker_clips",
                "applies to `normalize = \"speaker\"` only",
            ));
        }
        _ => {}
    }
    if p.pre_emphasis.is_some_and(|a| !(0.0..1.0).contains(&a)) {
        return Err(ParamError::rule("pre_emphasis", "must be in [0, 1)"));
    }
    if p.n_fft < 16 {
        return Err(ParamError::new("n_fft", p.n_fft, "must be at least 16"));
    }
    if p.hop_length == 0 {
        return Err(ParamError::new("hop_length", 0, "must be positive"));
    }
    if p.n_mels == 0 {
        return Err(ParamError::new("n_mels", 0, "must be positive"));
    }
    if mfcc {
        let n = p.n_mfcc.unwrap_or(13);
        if n == 0 || n > p.n_mels {
            return Err(ParamError::new(
                "n_mfcc",
                n,
                format!("must be 1 to n_mels ({})", p.n_mels),
            ));
        }
    }
    if !(p.f_min >= 0.0 && p.f_min.is_finite()) {
        return Err(ParamError::new("f_min", p.f_min, "must be 0 Hz or more"));
    }
    if let Some(f_max) = p.f_max
        && (f_max.is_nan() || f_max <= p.f_min)
    {
        return Err(ParamError::new(
            "f_max",
            f_max,
            format!("must be above f_min ({} Hz)", p.f_min),
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

    fn check(p: &Self::Params) -> Result<(), ParamError> {
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

    fn check(p: &Self::Params) -> Result<(), ParamError> {
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
