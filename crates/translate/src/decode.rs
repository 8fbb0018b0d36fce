//! Batched greedy and beam search over the incremental decoder. Finished sentences leave
//! the batch, so a long one does not keep the short ones computing.

use burn::tensor::{Device, Int, Tensor, TensorData};
use profundo_pipeline::ParamError;
use serde::{Deserialize, Serialize};

use crate::model::{Padded, Seq2Seq};

/// How to decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Beam size (1 = greedy).
    pub beam: usize,
    /// Hypotheses are ranked by log-probability / length^length_penalty.
    pub length_penalty: f32,
    /// Longest output: `max_len_a x source tokens + max_len_b` (and the model's maximum).
    pub max_len_a: f32,
    /// See `max_len_a`.
    pub max_len_b: usize,
    /// Sentences decoded together.
    pub batch_size: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            beam: 1,
            length_penalty: 1.0,
            max_len_a: 1.5,
            max_len_b: 10,
            batch_size: 64,
        }
    }
}

impl DecodeConfig {
    /// The same settings with beam size `beam`.
    pub fn with_beam(&self, beam: usize) -> Self {
        Self {
            beam: beam.max(1),
            ..self.clone()
        }
    }

    /// Checks the settings.
    pub fn check(&self) -> Result<(), ParamError> {
        if self.beam == 0 || self.beam > 64 {
            return Err(ParamError::new("beam", self.beam, "must be 1..=64"));
        }
        if self.batch_size == 0 {
            return Err(ParamError::rule("batch_size", "must be positive"));
        }
        if self.max_len_a.is_nan() || self.max_len_a < 0.0 {
            return Err(ParamError::rule("max_len_a", "must not be negative"));
        }
        Ok(())
    }
}

/// Special token ids decoding needs.
#[derive(Debug, Clone, Copy)]
pub struct Specials {
    /// Padding.
    pub pad: u32,
    /// Start of target.
    pub bos: u32,
    /// End of sentence.
    pub eos: u32,
}

fn ints(v: &[u32], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(data, [v.len()]), device)
}

/// Translates each source (token ids with tag and end token) into target token ids
/// (without specials), in input order.
pub fn decode(
    model: &Seq2Seq,
    sources: &[Vec<u32>],
    cfg: &DecodeConfig,
    sp: Specials,
    device: &Device,
) -> Vec<Vec<u32>> {
    // Sorting by length keeps batches tight; results go back to input order.
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&i| sources[i].len());
    let mut out = vec![Vec::new(); sources.len()];
    let batch = cfg.batch_size.max(1);
    for chunk in order.chunks(batch) {
        let srcs: Vec<Vec<u32>> = chunk.iter().map(|&i| sources[i].clone()).collect();
        let hyps = if cfg.beam <= 1 {
            greedy(model, &srcs, cfg, sp, device)
        } else {
            beam(model, &srcs, cfg, sp, device)
        };
        for (&i, h) in chunk.iter().zip(hyps) {
            out[i] = h;
        }
    }
    out
}

/// `[1, vocab]`: 0, or a large negative number for tokens never to generate (padding and
/// start-of-target).
fn forbidden(model: &Seq2Seq, sp: Specials, device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; model.vocab_size()];
    for t in [sp.pad, sp.bos] {
        if let Some(x) = v.get_mut(t as usize) {
            *x = -1e9;
        }
    }
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), device)
}

fn limit(model: &Seq2Seq, cfg: &DecodeConfig, src_len: usize) -> usize {
    let l = (cfg.max_len_a * src_len as f32) as usize + cfg.max_len_b;
    l.clamp(1, model.max_len().saturating_sub(1).max(1))
}

fn greedy(
    model: &Seq2Seq,
    srcs: &[Vec<u32>],
    cfg: &DecodeConfig,
    sp: Specials,
    device: &Device,
) -> Vec<Vec<u32>> {
    let memory = model.encode(&Padded::new(srcs, sp.pad, device));
    let mut state = model.start(&memory);
    let limits: Vec<usize> = srcs.iter().map(|s| limit(model, cfg, s.len())).collect();
    let mut out = vec![Vec::new(); srcs.len()];
    // Rows still decoding, as indices into `srcs`.
    let mut alive: Vec<usize> = (0..srcs.len()).collect();
    let mut last = vec![sp.bos; srcs.len()];
    let never = forbidden(model, sp, device);
    while !alive.is_empty() {
        let lp = model.step(&mut state, ints(&last, device)) + never.clone();
        let next: Vec<i64> = lp.argmax(1).into_data().try_to_vec_as().unwrap_or_default();
        let mut keep = Vec::with_capacity(alive.len());
        let mut kept = Vec::with_capacity(alive.len());
        for (row, (&s, &tok)) in alive.iter().zip(&next).enumerate() {
            let tok = tok as u32;
            if tok == sp.eos {
                continue;
            }
            out[s].push(tok);
            if out[s].len() < limits[s] {
                keep.push(row as u32);
                kept.push(s);
            }
        }
        if kept.len() != alive.len() && !kept.is_empty() {
            state.select(ints(&keep, device));
        }
        last = kept
            .iter()
            .map(|&s| *out[s].last().unwrap_or(&sp.bos))
            .collect();
        alive = kept;
    }
    out
}

/// One hypothesis in the beam.
#[derive(Debug, Clone)]
struct Hyp {
    tokens: Vec<u32>,
    logp: f32,
}

fn normalised(logp: f32, len: usize, alpha: f32) -> f32 {
    logp / (len.max(1) as f32).powf(alpha)
}

/// The best `take` (score, flat index over beam x vocabulary) continuations of each alive
/// sentence; one top-k over the whole batch when every sentence has the same beam count.
fn top_candidates(
    total: Tensor<2>,
    alive: &[usize],
    beams: &[Vec<Hyp>],
    row_of: &[usize],
    take: usize,
    vocab: usize,
) -> Vec<(Vec<f32>, Vec<i64>)> {
    let nb0 = beams[alive[0]].len();
    let to_vecs = |t: Tensor<2>, i: Tensor<2, Int>| -> (Vec<f32>, Vec<i64>) {
        (
            t.into_data().try_to_vec_as().unwrap_or_default(),
            i.into_data().try_to_vec_as().unwrap_or_default(),
        )
    };
    if alive.iter().all(|&s| beams[s].len() == nb0) {
        let n = alive.len();
        let take = take.min(nb0 * vocab);
        let (v, i) = total.reshape([n, nb0 * vocab]).topk_with_indices(take, 1);
        let (vals, idx) = to_vecs(v, i);
        return (0..n)
            .map(|a| {
                (
                    vals[a * take..(a + 1) * take].to_vec(),
                    idx[a * take..(a + 1) * take].to_vec(),
                )
            })
            .collect();
    }
    alive
        .iter()
        .enumerate()
        .map(|(a, &s)| {
            let nb = beams[s].len();
            let block = total
                .clone()
                .slice([row_of[a]..row_of[a] + nb, 0..vocab])
                .reshape([1, nb * vocab]);
            let (v, i) = block.topk_with_indices(take.min(nb * vocab), 1);
            to_vecs(v, i)
        })
        .collect()
}

fn beam(
    model: &Seq2Seq,
    srcs: &[Vec<u32>],
    cfg: &DecodeConfig,
    sp: Specials,
    device: &Device,
) -> Vec<Vec<u32>> {
    let k = cfg.beam;
    let n = srcs.len();
    let memory = model.encode(&Padded::new(srcs, sp.pad, device));
    let mut state = model.start(&memory);
    // Start with one live hypothesis per sentence; rows grow to k after the first step.
    let limits: Vec<usize> = srcs.iter().map(|s| limit(model, cfg, s.len())).collect();
    let mut beams: Vec<Vec<Hyp>> = (0..n)
        .map(|_| {
            vec![Hyp {
                tokens: Vec::new(),
                logp: 0.0,
            }]
        })
        .collect();
    let mut finished: Vec<Vec<Hyp>> = vec![Vec::new(); n];
    let mut alive: Vec<usize> = (0..n).collect();
    let mut last: Vec<u32> = vec![sp.bos; n];
    let never = forbidden(model, sp, device);
    while !alive.is_empty() {
        let lp = model.step(&mut state, ints(&last, device)) + never.clone();
        let [rows, vocab] = lp.dims();
        // Add each row's running score, then take the best 2k continuations per sentence.
        let scores: Vec<f32> = alive
            .iter()
            .flat_map(|&s| beams[s].iter().map(|h| h.logp))
            .collect();
        let total =
            lp + Tensor::<1>::from_data(TensorData::new(scores, [rows]), device).reshape([rows, 1]);
        let mut row_of = Vec::with_capacity(alive.len());
        let mut r = 0;
        for &s in &alive {
            row_of.push(r);
            r += beams[s].len();
        }
        let mut select_rows: Vec<u32> = Vec::new();
        let mut next_last: Vec<u32> = Vec::new();
        let mut next_alive: Vec<usize> = Vec::new();
        let candidates = top_candidates(total, &alive, &beams, &row_of, 2 * k, vocab);
        for (a, &s) in alive.iter().enumerate() {
            let (vals, idx) = &candidates[a];
            let mut new_beam = Vec::with_capacity(k);
            for (&v, &flat) in vals.iter().zip(idx) {
                let (b, tok) = (flat as usize / vocab, (flat as usize % vocab) as u32);
                let prev = &beams[s][b];
                if tok == sp.eos {
                    if finished[s].len() < k {
                        finished[s].push(Hyp {
                            tokens: prev.tokens.clone(),
                            logp: v,
                        });
                    }
                    continue;
                }
                if new_beam.len() < k {
                    let mut tokens = prev.tokens.clone();
                    tokens.push(tok);
                    new_beam.push((b, Hyp { tokens, logp: v }));
                }
                if new_beam.len() == k && finished[s].len() >= k {
                    break;
                }
            }
            let at_limit = new_beam
                .first()
                .is_some_and(|(_, h)| h.tokens.len() >= limits[s]);
            let best_done = finished[s]
                .iter()
                .map(|h| normalised(h.logp, h.tokens.len() + 1, cfg.length_penalty))
                .fold(f32::NEG_INFINITY, f32::max);
            // Log-probabilities only fall, so an alive hypothesis cannot beat a finished one
            // once its (optimistic) score at the current length is already worse and k
            // hypotheses are done.
            let best_alive = new_beam
                .iter()
                .map(|(_, h)| normalised(h.logp, limits[s] + 1, cfg.length_penalty))
                .fold(f32::NEG_INFINITY, f32::max);
            let done = new_beam.is_empty()
                || at_limit
                || (finished[s].len() >= k && best_done >= best_alive);
            if done {
                // Hypotheses cut off at the length limit compete with the finished ones.
                if at_limit || finished[s].is_empty() {
                    finished[s].extend(new_beam.into_iter().map(|(_, h)| h));
                }
                continue;
            }
            for (b, h) in &new_beam {
                select_rows.push((row_of[a] + b) as u32);
                next_last.push(*h.tokens.last().unwrap_or(&sp.bos));
            }
            beams[s] = new_beam.into_iter().map(|(_, h)| h).collect();
            next_alive.push(s);
        }
        if next_alive.is_empty() {
            break;
        }
        state.select(ints(&select_rows, device));
        last = next_last;
        alive = next_alive;
    }
    finished
        .into_iter()
        .map(|hs| {
            hs.into_iter()
                .max_by(|a, b| {
                    let na = normalised(a.logp, a.tokens.len() + 1, cfg.length_penalty);
                    let nb = normalised(b.logp, b.tokens.len() + 1, cfg.length_penalty);
                    na.total_cmp(&nb)
                })
                .map(|h| h.tokens)
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn setup() -> (Seq2Seq, Device, Specials) {
        let device = Device::flex();
        let cfg = ModelConfig {
            d_model: 16,
            heads: 2,
            d_ff: 32,
            encoder_layers: 1,
            decoder_layers: 1,
            dropout: 0.0,
            max_len: 16,
        };
        let sp = Specials {
            pad: 0,
            bos: 1,
            eos: 2,
        };
        (cfg.init(12, &device), device, sp)
    }

    #[test]
    fn outputs_respect_the_length_limit_and_input_order() {
        let (m, device, sp) = setup();
        let srcs = vec![vec![3, 4, 5, 6, 2], vec![7, 2], vec![8, 9, 2]];
        let cfg = DecodeConfig {
            max_len_a: 1.0,
            max_len_b: 1,
            ..DecodeConfig::default()
        };
        for beam in [1, 3] {
            let out = decode(&m, &srcs, &cfg.with_beam(beam), sp, &device);
            assert_eq!(out.len(), 3);
            for (o, s) in out.iter().zip(&srcs) {
                assert!(o.len() <= s.len() + 1, "beam {beam}: {o:?}");
                assert!(!o.contains(&sp.eos) && !o.contains(&sp.bos));
            }
            // Decoding one at a time gives the same result as in a batch.
            for (i, s) in srcs.iter().enumerate() {
                let single = decode(
                    &m,
                    std::slice::from_ref(s),
                    &cfg.with_beam(beam),
                    sp,
                    &device,
                );
                assert_eq!(single[0], out[i], "beam {beam}, sentence {i}");
            }
        }
    }

    #[test]
    fn a_beam_as_wide_as_the_vocabulary_finds_the_best_sequence() {
        let (m, device, sp) = setup();
        let src = vec![3, 4, 5, 2];
        // Outputs of at most 2 tokens, ranked by raw log-probability.
        let cfg = DecodeConfig {
            length_penalty: 0.0,
            max_len_a: 0.0,
            max_len_b: 2,
            ..DecodeConfig::default()
        };
        let mut best = f32::NEG_INFINITY;
        let mut candidates = vec![vec![]];
        // Padding and start-of-target are never generated.
        let free = |t: &u32| ![sp.eos, sp.pad, sp.bos].contains(t);
        for a in (0..12u32).filter(free) {
            candidates.push(vec![a]);
            for b in (0..12u32).filter(free) {
                candidates.push(vec![a, b]);
            }
        }
        for c in &candidates {
            best = best.max(sequence_logp(&m, &src, c, 2, sp, &device));
        }
        let beam = decode(
            &m,
            std::slice::from_ref(&src),
            &cfg.with_beam(12),
            sp,
            &device,
        );
        let greedy = decode(&m, std::slice::from_ref(&src), &cfg, sp, &device);
        let lb = sequence_logp(&m, &src, &beam[0], 2, sp, &device);
        let lg = sequence_logp(&m, &src, &greedy[0], 2, sp, &device);
        assert!((lb - best).abs() < 1e-4, "beam {lb} vs best {best}");
        assert!(lg <= best + 1e-4);
    }

    /// Log-probability of `out` (+ end token unless it reached `limit`) under the model.
    fn sequence_logp(
        m: &Seq2Seq,
        src: &[u32],
        out: &[u32],
        limit: usize,
        sp: Specials,
        device: &Device,
    ) -> f32 {
        let memory = m.encode(&Padded::new(&[src.to_vec()], sp.pad, device));
        let mut state = m.start(&memory);
        let mut prev = sp.bos;
        let mut total = 0.0;
        let mut targets = out.to_vec();
        if out.len() < limit {
            targets.push(sp.eos);
        }
        for &t in &targets {
            let lp: Vec<f32> = m
                .step(&mut state, ints(&[prev], device))
                .into_data()
                .try_to_vec()
                .unwrap();
            total += lp[t as usize];
            prev = t;
        }
        total
    }
}
