//! `speech.augment`: seeded waveform augmentation (noise, shift, gain, speed) and test-time views.

use super::*;

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

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        let ordered = |r: Option<[f32; 2]>| r.is_none_or(|[a, b]| a <= b);
        if let Some([a, _]) = p.speed
            && a <= 0.2
        {
            return Err(ParamError::rule("speed", "factors must be > 0.2"));
        }
        if let Some(f) = p.test_speeds.iter().find(|f| !(0.2..=5.0).contains(*f)) {
            return Err(ParamError::new(
                "test_speeds",
                f,
                "factors must be in [0.2, 5]",
            ));
        }
        for (name, r) in [
            ("speed", p.speed),
            ("gain_db", p.gain_db),
            ("noise_snr_db", p.noise_snr_db),
        ] {
            if !ordered(r) {
                return Err(ParamError::rule(
                    name,
                    "expected [min, max] with min <= max",
                ));
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
