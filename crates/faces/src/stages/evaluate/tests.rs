//! Face evaluation tests: closed and open set, S-norm, thresholds from other folds.

use super::*;
use crate::stages::embeddings::EmbeddedItem;

fn fold(items: &[(&str, Role, [f32; 2])]) -> FoldEmbeddings {
    FoldEmbeddings {
        fold: "f".into(),
        dim: 2,
        items: items
            .iter()
            .enumerate()
            .map(|(i, (p, r, _))| EmbeddedItem {
                name: format!("{p}/{i}"),
                person: p.to_string(),
                role: *r,
            })
            .collect(),
        vectors: items.iter().flat_map(|(_, _, v)| *v).collect(),
        threshold: 0.9,
        threshold_rule: "test".into(),
        model_dir: None,
        history: Vec::new(),
        best_epoch: 0,
        stop: None,
        seconds: 0.0,
    }
}

fn raw(f: &FoldEmbeddings) -> Scoring<'_> {
    Scoring::new(f, Similarity::Cosine, ScoreNorm::None, 0)
}

#[test]
fn closed_set_uses_the_nearest_training_image() {
    let f = fold(&[
        ("a", Role::Train, [1.0, 0.0]),
        ("b", Role::Train, [0.0, 1.0]),
        ("a", Role::Test, [0.8, 0.6]),
        ("b", Role::Test, [0.8, 0.6]),
    ]);
    let (m, g, i) = evaluate_fold(&f, &raw(&f), 1);
    // Both test images are nearest to a's training image: one of two is right.
    assert_eq!(m["closed_set_accuracy"], json!(0.5));
    assert!(g.is_empty() && i.len() == 1);
    assert!(m.get("open_set").is_none());
}

#[test]
fn open_set_enrolls_first_images_and_rejects_strangers_below_the_threshold() {
    let f = fold(&[
        ("t", Role::Train, [1.0, 0.0]),
        ("a", Role::Test, [1.0, 0.0]),
        ("a", Role::Test, [0.96, 0.28]),
        ("b", Role::Test, [0.0, 1.0]),
        ("b", Role::Test, [0.6, 0.8]),
    ]);
    let (m, _, _) = evaluate_fold(&f, &raw(&f), 1);
    let o = &m["open_set"];
    assert_eq!(o["queries"], json!(2));
    // a's query (0.96, 0.28) is nearest a, b's (0.6, 0.8) nearest b.
    assert_eq!(o["identification_accuracy"], json!(1.0));
    // At threshold 0.9: a's query scores 0.96 with a -> detected; b's 0.8 -> not.
    assert_eq!(o["detection_identification_rate"], json!(0.5));
    // Without their own template: a's query vs b = 0.28, b's vs a = 0.6: both rejected.
    assert_eq!(o["rejection_rate_not_enrolled"], json!(1.0));
}

#[test]
fn s_norm_scores_pairs_against_the_training_cohort() {
    let f = fold(&[
        ("t", Role::Train, [1.0, 0.0]),
        ("u", Role::Train, [0.0, 1.0]),
        ("t", Role::Valid, [0.96, 0.28]),
        ("u", Role::Valid, [0.28, 0.96]),
        ("a", Role::Test, [0.6, 0.8]),
        ("b", Role::Test, [0.8, 0.6]),
    ]);
    let s = Scoring::new(&f, Similarity::Cosine, ScoreNorm::SNorm, 0);
    // Test faces against the whole cohort {t, u}: a scores 0.6 and 0.8, b 0.8 and 0.6,
    // so both have mean 0.7 and sd 0.1; their raw score 0.96 becomes (0.96-0.7)/0.1.
    assert!((s.items(4, 5) - 2.6).abs() < 1e-5, "{}", s.items(4, 5));
    // A validation face of t leaves t out of its cohort: only u (score 0.28), a
    // one-score cohort whose sd is floored.
    let own = Cohort::new(
        [("t", f.vector(0)), ("u", f.vector(1))],
        2,
        0,
        Similarity::Cosine,
    )
    .stats(f.vector(2), Some("t"));
    assert!((own.mean - 0.28).abs() < 1e-6 && own.sd <= 1e-6, "{own:?}");
    // No genuine validation pair: the threshold stays the fold's.
    assert_eq!(s.threshold, f.threshold);
    let (m, _, _) = evaluate_fold(&f, &s, 1);
    assert_eq!(m["score_norm"], json!("s_norm"));
    assert_eq!(
        evaluate_fold(&f, &raw(&f), 1).0["score_norm"],
        json!("none")
    );
}

#[test]
fn means_average_numeric_leaves() {
    let m = mean_of(&[
        json!({"a": 1.0, "o": {"x": 2}}),
        json!({"a": 3.0, "o": {"x": 4}}),
    ]);
    assert_eq!(m, json!({"a": 2.0, "o": {"x": 3.0}}));
}

#[test]
fn other_folds_thresholds_never_use_the_folds_own_test_people() {
    let test_fold = |b: [f32; 2]| {
        fold(&[
            ("t", Role::Train, [1.0, 0.0]),
            ("a", Role::Test, [1.0, 0.0]),
            ("a", Role::Test, [0.8, 0.6]),
            ("b", Role::Test, b),
            ("b", Role::Test, [0.0, 1.0]),
        ])
    };
    let folds = [
        test_fold([0.0, 1.0]),
        test_fold([0.6, 0.8]),
        test_fold([0.28, 0.96]),
    ];
    let mut scorings: Vec<Scoring<'_>> = folds.iter().map(raw).collect();
    let own: Vec<f64> = scorings
        .iter()
        .map(|s| s.test_threshold(None).expect("genuine and impostor pairs"))
        .collect();
    assert!(
        own[0] != own[1],
        "the folds must differ for the test to mean anything"
    );
    thresholds_from_other_folds(&mut scorings, None).expect("three folds");
    for (k, s) in scorings.iter().enumerate() {
        let others: Vec<f64> = (0..3).filter(|&j| j != k).map(|j| own[j]).collect();
        let want = others.iter().sum::<f64>() / 2.0;
        assert!(
            (s.threshold - want).abs() < 1e-12,
            "fold {k}: {} vs {want}",
            s.threshold
        );
        assert!(s.rule.contains("other 2 folds"), "{}", s.rule);
    }
    // The fold's metrics report the threshold it was judged at and where it came from.
    let (m, _, _) = evaluate_fold(&folds[0], &scorings[0], 1);
    assert_eq!(m["threshold"], json!(scorings[0].threshold));
    assert_eq!(m["threshold_rule"], json!(scorings[0].rule));

    // At a target FAR of 0 every fold's own threshold rejects all its impostor pairs,
    // and the rule says so.
    let mut strict: Vec<Scoring<'_>> = folds.iter().map(raw).collect();
    thresholds_from_other_folds(&mut strict, Some(1e-9)).expect("three folds");
    assert!(strict[0].rule.contains("at FAR"), "{}", strict[0].rule);
    assert!(
        strict
            .iter()
            .zip(&scorings)
            .any(|(a, b)| a.threshold != b.threshold)
    );

    // One fold cannot be calibrated on the others.
    let mut single = vec![raw(&folds[0])];
    let err = thresholds_from_other_folds(&mut single, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least two folds"), "{err}");
}

#[test]
fn a_target_far_is_a_rate_strictly_between_0_and_1() {
    let with = |threshold, target_far| EvaluateParams {
        threshold,
        target_far,
        ..Default::default()
    };
    for rule in [ThresholdRule::OtherFolds, ThresholdRule::Validation] {
        assert!(EvaluateFaces::check(&with(rule, Some(0.01))).is_ok());
        assert!(EvaluateFaces::check(&with(rule, None)).is_ok());
        for bad in [0.0, 1.0, f64::NAN] {
            let err = EvaluateFaces::check(&with(rule, Some(bad))).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("target_far"), "{err}");
            assert_eq!(err.value, Some(bad.to_string()));
        }
    }
}

#[test]
fn a_validation_threshold_at_a_far_admits_no_more_impostor_pairs_than_allowed() {
    let f = fold(&[
        ("t", Role::Train, [1.0, 0.0]),
        ("t", Role::Valid, [1.0, 0.0]),
        ("t", Role::Valid, [0.8, 0.6]),
        ("u", Role::Valid, [0.6, 0.8]),
        ("u", Role::Valid, [0.0, 1.0]),
    ]);
    // Validation pairs: genuine 0.8 (t) and 0.8 (u); impostors 0.6, 0.0, 0.96, 0.6.
    let mut s = raw(&f);
    s.validation_threshold_at_far(0.01);
    assert!(s.threshold > 0.96, "{}", s.threshold);
    assert!(
        s.rule.contains("at FAR 1% on validation pairs"),
        "{}",
        s.rule
    );
    s.validation_threshold_at_far(0.5);
    assert!(s.threshold > 0.6 && s.threshold <= 0.8, "{}", s.threshold);
}
