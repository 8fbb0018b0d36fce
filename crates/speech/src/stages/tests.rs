//! Speech stage tests: WAV folders, name patterns, augmentation, features.

use super::features::check_spectral;
use super::*;

#[test]
fn speaker_clips_needs_speaker_normalisation_and_a_positive_count() {
    let mut p = SpectralParams {
        speaker_clips: Some(20),
        ..SpectralParams::default()
    };
    let err = check_spectral(&p, true).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("speaker_clips"));
    assert!(err.expected.contains("speaker"), "{err}");
    p.normalize = Normalize::Speaker;
    assert!(check_spectral(&p, true).is_ok());
    p.speaker_clips = Some(0);
    assert!(check_spectral(&p, true).is_err());
}

#[test]
fn every_spectral_setting_is_checked_as_itself_before_anything_runs() {
    let ok = SpectralParams::default();
    assert!(check_spectral(&ok, true).is_ok());
    let cases: [(SpectralParams, &str, Option<&str>); 5] = [
        (
            SpectralParams {
                hop_length: 0,
                ..ok.clone()
            },
            "hop_length",
            Some("0"),
        ),
        (
            SpectralParams {
                n_fft: 8,
                ..ok.clone()
            },
            "n_fft",
            Some("8"),
        ),
        (
            SpectralParams {
                n_mels: 0,
                ..ok.clone()
            },
            "n_mels",
            Some("0"),
        ),
        (
            SpectralParams {
                n_mfcc: Some(50),
                n_mels: 40,
                ..ok.clone()
            },
            "n_mfcc",
            Some("50"),
        ),
        (
            SpectralParams {
                f_max: Some(100.0),
                f_min: 200.0,
                ..ok.clone()
            },
            "f_max",
            Some("100"),
        ),
    ];
    for (p, param, value) in cases {
        let err = check_spectral(&p, true).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{err}");
        assert_eq!(err.value.as_deref(), value, "{err}");
    }
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
    let err = Augment::check(&bad).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("test_speeds"), "{err}");
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
