//! How a fold's pairs are scored (raw similarity or S-norm, and the threshold), and open-set identification with enrolled templates.

use super::*;

/// How one fold's pairs are scored: raw similarity, or S-norm against the fold's training
/// images with the threshold re-chosen on its validation images.
pub struct Scoring<'a> {
    /// The fold scored.
    pub f: &'a FoldEmbeddings,
    sim: Similarity,
    /// The S-norm cohort; `None` scores raw similarity.
    cohort: Option<Cohort<'a>>,
    /// Cohort statistics of every item (S-norm only).
    stats: Vec<Option<CohortStats>>,
    /// The "same person" threshold in this scoring's scale.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub rule: String,
}

impl<'a> Scoring<'a> {
    /// Scoring of fold `f`. With S-norm the cohort is the fold's training images; training
    /// and validation faces are measured against the other people's images only, as a
    /// test face (of a person outside the cohort) is.
    pub fn new(f: &'a FoldEmbeddings, sim: Similarity, norm: ScoreNorm, top: usize) -> Self {
        let train = f.with_role(Role::Train);
        if norm == ScoreNorm::None || train.is_empty() {
            return Self {
                f,
                sim,
                cohort: None,
                stats: vec![None; f.items.len()],
                threshold: f.threshold,
                rule: f.threshold_rule.clone(),
            };
        }
        let cohort = Cohort::new(
            train
                .iter()
                .map(|&i| (f.items[i].person.as_str(), f.vector(i))),
            f.dim,
            top,
            sim,
        );
        let stats = (0..f.items.len())
            .map(|i| {
                let item = &f.items[i];
                let exclude = (item.role != Role::Test).then_some(item.person.as_str());
                Some(cohort.stats(f.vector(i), exclude))
            })
            .collect();
        let mut scoring = Self {
            f,
            sim,
            cohort: Some(cohort),
            stats,
            threshold: f.threshold,
            rule: f.threshold_rule.clone(),
        };
        if let Some(t) = scoring.threshold_of(Role::Valid, None) {
            scoring.threshold = t;
            scoring.rule = "equal error rate on validation pairs (S-norm scale)".into();
        }
        scoring
    }

    /// The threshold on the pairs of this fold's test images at the equal error rate (or
    /// at `target_far`), if they form both genuine and impostor pairs.
    pub fn test_threshold(&self, target_far: Option<f64>) -> Option<f64> {
        self.threshold_of(Role::Test, target_far)
    }

    /// Re-chooses the threshold at `far` on this fold's validation pairs (kept when they do
    /// not form both genuine and impostor pairs).
    pub fn validation_threshold_at_far(&mut self, far: f64) {
        if let Some(t) = self.threshold_of(Role::Valid, Some(far)) {
            self.threshold = t;
            self.rule = format!("threshold at FAR {}% on validation pairs", far * 100.0);
        }
    }

    fn threshold_of(&self, role: Role, target_far: Option<f64>) -> Option<f64> {
        let idx = self.f.with_role(role);
        let labels: Vec<&str> = idx
            .iter()
            .map(|&i| self.f.items[i].person.as_str())
            .collect();
        let (g, i) = pair_scores(&labels, |a, b| self.items(idx[a], idx[b]));
        (!g.is_empty() && !i.is_empty()).then(|| match target_far {
            Some(far) => threshold_at_far(&roc(&g, &i), far),
            None => verification(&g, &i).eer_threshold,
        })
    }

    /// The normalisation this scoring applies.
    pub fn norm(&self) -> ScoreNorm {
        match self.cohort {
            Some(_) => ScoreNorm::SNorm,
            None => ScoreNorm::None,
        }
    }

    /// Score of items `a` and `b`.
    pub fn items(&self, a: usize, b: usize) -> f64 {
        let raw = self.sim.score(self.f.vector(a), self.f.vector(b));
        match (self.stats[a], self.stats[b]) {
            (Some(sa), Some(sb)) => s_norm(raw, sa, sb),
            _ => raw,
        }
    }

    /// Cohort statistics of an enrolment template (S-norm only).
    pub fn stats_of(&self, template: &[f32]) -> Option<CohortStats> {
        self.cohort.as_ref().map(|c| c.stats(template, None))
    }

    /// Score of item `q` against a template with statistics `stats`.
    pub fn with_template(&self, q: usize, template: &[f32], stats: Option<CohortStats>) -> f64 {
        let raw = self.sim.score(self.f.vector(q), template);
        match (self.stats[q], stats) {
            (Some(sq), Some(st)) => s_norm(raw, sq, st),
            _ => raw,
        }
    }
}

/// Mean embedding of `idx`, unit length for cosine similarity.
pub fn template(f: &FoldEmbeddings, idx: &[usize], sim: Similarity) -> Vec<f32> {
    let mut t = vec![0.0f32; f.dim];
    for &i in idx {
        t.iter_mut().zip(f.vector(i)).for_each(|(a, b)| *a += b);
    }
    let n = idx.len().max(1) as f32;
    t.iter_mut().for_each(|v| *v /= n);
    if sim == Similarity::Cosine {
        let norm = t.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        t.iter_mut().for_each(|v| *v /= norm);
    }
    t
}

pub(super) fn open_set(
    f: &FoldEmbeddings,
    scoring: &Scoring<'_>,
    test: &[usize],
    enroll: usize,
) -> Value {
    let sim = scoring.sim;
    let mut by_person: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in test {
        by_person
            .entry(f.items[i].person.as_str())
            .or_default()
            .push(i);
    }
    // Enroll each person with at least two images from their first images.
    let mut people = Vec::new();
    for (name, imgs) in &by_person {
        if imgs.len() < 2 {
            continue;
        }
        let e = enroll.min(imgs.len() - 1);
        let t = template(f, &imgs[..e], sim);
        let stats = scoring.stats_of(&t);
        people.push((*name, (t, stats), imgs[e..].to_vec()));
    }
    let (mut queries, mut hits, mut detected, mut rejected) = (0usize, 0usize, 0usize, 0usize);
    for (pi, (_, _, qs)) in people.iter().enumerate() {
        for &q in qs {
            queries += 1;
            let scores: Vec<f64> = people
                .iter()
                .map(|(_, (t, stats), _)| scoring.with_template(q, t, *stats))
                .collect();
            let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            if best == Some(pi) {
                hits += 1;
                if scores[pi] >= scoring.threshold {
                    detected += 1;
                }
            }
            // The same query when this person is not enrolled.
            let best_other = (0..scores.len())
                .filter(|&j| j != pi)
                .map(|j| scores[j])
                .fold(f64::NEG_INFINITY, f64::max);
            if best_other < scoring.threshold {
                rejected += 1;
            }
        }
    }
    let q = queries.max(1) as f64;
    json!({
        "enrolled_people": people.len(),
        "enroll_images": enroll,
        "queries": queries,
        "identification_accuracy": hits as f64 / q,
        "detection_identification_rate": detected as f64 / q,
        "rejection_rate_not_enrolled": rejected as f64 / q,
    })
}
