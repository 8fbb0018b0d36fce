//! `translate.evaluate`: sacreBLEU-compatible BLEU and chrF2 per direction, greedy and beam.

use super::*;

/// Parameters of `translate.evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {
    /// Decoding settings (`beam` is the beam size of the beam rows; greedy is always run).
    pub decode: DecodeConfig,
    /// Test pairs to use (0 = all).
    pub test_sentences: usize,
    /// Example translations in the report.
    pub examples: usize,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            decode: DecodeConfig {
                beam: 5,
                ..DecodeConfig::default()
            },
            test_sentences: 0,
            examples: 10,
        }
    }
}

/// Scores a translation model on the test set.
pub struct EvaluateTranslator;

impl TypedStage for EvaluateTranslator {
    type Params = EvaluateParams;
    const KIND: &'static str = "translate.evaluate";
    const DOC: &'static str = "sacreBLEU-compatible BLEU and chrF2 per direction on the test set, greedy and beam, with example translations";
    const INPUTS: &'static [Slot] = &[
        CORPUS,
        SPLIT,
        Slot {
            name: "model",
            accepts: &[TranslationModel::TYPE],
            optional: false,
        },
    ];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.decode.check().map_err(|e| e.within("decode"))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (corpus, parts) = corpus_and_split(inputs)?;
        let m: &TranslationModel = input(inputs, 2)?;
        let device = backend::device(ctx.backend, &ctx.device)?;
        let translator = Translator::load(&m.dir(), &device)?;
        let test: Vec<u32> = if p.test_sentences > 0 {
            parts.test.iter().take(p.test_sentences).copied().collect()
        } else {
            parts.test.clone()
        };
        let results = evaluate(&translator, corpus, &test, &p.decode, p.examples)?;
        for r in &results {
            ctx.log(&r.summary());
        }
        let mut metrics = serde_json::Map::new();
        for r in &results {
            metrics.insert(r.direction.to_string(), r.metrics());
        }
        metrics.insert("test_sentences".into(), test.len().into());
        metrics.insert(
            "bleu_signature".into(),
            crate::sacrebleu::bleu_signature().into(),
        );
        metrics.insert(
            "chrf_signature".into(),
            crate::sacrebleu::chrf_signature().into(),
        );
        let pr = &m.progress;
        metrics.insert("training_minutes".into(), (pr.elapsed_s / 60.0).into());
        metrics.insert("training_steps".into(), pr.step.into());
        let report = crate::evaluation::report(&results, test.len());
        let summary = TranslationSummary {
            test_sentences: test.len(),
            directions: results.iter().map(|r| r.summary_scores()).collect(),
            bleu_signature: crate::sacrebleu::bleu_signature(),
        };
        Ok(Arc::new(MetricsArtifact {
            metrics: serde_json::Value::Object(metrics),
            summary: Some(MetricsArtifact::summary_of(&summary)?),
            domain: Some(Domain::Translate),
            thresholds: Default::default(),
            report,
            plots: Vec::new(),
            root: PathBuf::new(),
        }))
    }
}
