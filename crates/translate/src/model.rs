//! The Transformer encoder-decoder: one shared subword embedding for both languages (tied
//! to the output projection), sinusoidal positions, pre-norm burn-nn encoder and decoder
//! layers with a final LayerNorm each, padding masks on the source and a causal mask on the
//! target. Decoding uses its own key/value cache ([`DecoderState`]) over the same layer
//! parameters, so beams can be reordered between steps.

use burn::module::Module;
use burn::nn::attention::{MultiHeadAttention, generate_autoregressive_mask};
use burn::nn::transformer::{
    TransformerDecoder, TransformerDecoderConfig, TransformerDecoderInput, TransformerEncoder,
    TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
    generate_sinusoids,
};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use profundo_pipeline::ParamError;
use serde::{Deserialize, Serialize};

/// Network shape and regularisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Width of embeddings and layers.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the feed-forward layers.
    pub d_ff: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Dropout on embeddings, attention outputs and feed-forward outputs.
    pub dropout: f64,
    /// Longest sequence in tokens (positions beyond it are not encoded).
    pub max_len: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            d_model: 256,
            heads: 4,
            d_ff: 1024,
            encoder_layers: 3,
            decoder_layers: 3,
            dropout: 0.1,
            max_len: 128,
        }
    }
}

impl ModelConfig {
    /// Forward FLOPs for one sentence pair of `len` source and `len` target tokens over a
    /// `vocab`-token vocabulary: projections, attention products, feed-forward layers and the
    /// tied output projection (multiply-adds count two).
    pub fn forward_flops(&self, len: usize, vocab: usize) -> f64 {
        let (d, ff, l, v) = (
            self.d_model as f64,
            self.d_ff as f64,
            len as f64,
            vocab as f64,
        );
        let attention_products = |lq: f64, lk: f64| 2.0 * 2.0 * lq * lk * d;
        let feed_forward = 2.0 * 2.0 * l * d * ff;
        let encoder = 2.0 * 4.0 * l * d * d + attention_products(l, l) + feed_forward;
        let decoder = 2.0 * 4.0 * l * d * d // self-attention projections
            + attention_products(l, l)
            + 2.0 * 4.0 * l * d * d // cross-attention: query/output on the target, key/value on the source
            + attention_products(l, l)
            + feed_forward;
        self.encoder_layers as f64 * encoder
            + self.decoder_layers as f64 * decoder
            + 2.0 * l * d * v
    }

    /// Checks the settings; the error names the field.
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |f: &str, m: String| Err(ParamError::rule(f, m));
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(2 * self.heads) {
            return bad(
                "d_model",
                format!(
                    "must be a positive multiple of 2 x heads ({}), got {}",
                    2 * self.heads,
                    self.d_model
                ),
            );
        }
        if self.d_ff == 0 || self.encoder_layers == 0 || self.decoder_layers == 0 {
            return bad(
                "d_ff",
                "d_ff, encoder_layers and decoder_layers must be positive".into(),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        if self.max_len < 8 {
            return bad(
                "max_len",
                format!("must be at least 8, got {}", self.max_len),
            );
        }
        Ok(())
    }

    /// Builds the network for a vocabulary of `vocab_size` tokens.
    pub fn init(&self, vocab_size: usize, device: &Device) -> Seq2Seq {
        let d = self.d_model;
        let embedding = EmbeddingConfig::new(vocab_size, d)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: (d as f64).powf(-0.5),
            })
            .init(device);
        let encoder = TransformerEncoderConfig::new(d, self.d_ff, self.heads, self.encoder_layers)
            .with_dropout(self.dropout)
            .with_norm_first(true)
            .init(device);
        let decoder = TransformerDecoderConfig::new(d, self.d_ff, self.heads, self.decoder_layers)
            .with_dropout(self.dropout)
            .with_norm_first(true)
            .init(device);
        Seq2Seq {
            embedding,
            encoder,
            encoder_norm: LayerNormConfig::new(d).init(device),
            decoder,
            decoder_norm: LayerNormConfig::new(d).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            max_len: self.max_len,
        }
    }
}

/// The encoder-decoder network.
#[derive(Module, Debug)]
pub struct Seq2Seq {
    embedding: Embedding,
    encoder: TransformerEncoder,
    encoder_norm: LayerNorm,
    decoder: TransformerDecoder,
    decoder_norm: LayerNorm,
    dropout: Dropout,
    max_len: usize,
}

/// A padded batch of token ids with its padding mask (`true` = padding).
#[derive(Debug, Clone)]
pub struct Padded {
    /// `[batch, length]` ids.
    pub ids: Tensor<2, Int>,
    /// `[batch, length]`, true where padded.
    pub mask: Tensor<2, Bool>,
}

impl Padded {
    /// Pads `seqs` with `pad` to the longest one.
    pub fn new(seqs: &[Vec<u32>], pad: u32, device: &Device) -> Self {
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(seqs.len() * len);
        let mut mask = Vec::with_capacity(seqs.len() * len);
        for s in seqs {
            for i in 0..len {
                ids.push(s.get(i).map_or(pad as i64, |&t| t as i64));
                mask.push(i >= s.len());
            }
        }
        let shape = [seqs.len(), len];
        Self {
            ids: Tensor::from_data(TensorData::new(ids, shape), device),
            mask: Tensor::from_data(TensorData::new(mask, shape), device),
        }
    }
}

/// Encoder output for a batch: the memory and its padding mask.
#[derive(Debug, Clone)]
pub struct Memory {
    /// `[batch, source length, d_model]`.
    pub states: Tensor<3>,
    /// `[batch, source length]`, true where padded.
    pub mask: Tensor<2, Bool>,
}

impl Seq2Seq {
    /// Width of the model.
    pub fn d_model(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// Longest sequence the positions cover.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn positions(&self, start: usize, len: usize, device: &Device) -> Tensor<3> {
        let d = self.d_model();
        let table = generate_sinusoids(start + len, d, 10_000.max(start + len), device);
        table.slice([start..start + len, 0..d]).unsqueeze_dim(0)
    }

    fn embed(&self, ids: Tensor<2, Int>, start: usize) -> Tensor<3> {
        let [_, len] = ids.dims();
        let device = ids.device();
        let x = self.embedding.forward(ids) * (self.d_model() as f64).sqrt();
        self.dropout
            .forward(x + self.positions(start, len, &device))
    }

    fn project(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = h.dims();
        h.reshape([b * t, d])
            .matmul(self.embedding.weight.val().transpose())
            .reshape([b, t, self.vocab_size()])
    }

    /// Encodes a padded source batch.
    pub fn encode(&self, src: &Padded) -> Memory {
        let x = self.embed(src.ids.clone(), 0);
        let h = self
            .encoder
            .forward(TransformerEncoderInput::new(x).mask_pad(src.mask.clone()));
        Memory {
            states: self.encoder_norm.forward(h),
            mask: src.mask.clone(),
        }
    }

    /// Next-token logits `[batch, target length, vocab]` for every target prefix
    /// (teacher forcing, causal mask).
    pub fn forward(&self, memory: &Memory, target_in: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = target_in.dims();
        let device = target_in.device();
        let x = self.embed(target_in, 0);
        let input = TransformerDecoderInput::new(x, memory.states.clone())
            .memory_mask_pad(memory.mask.clone())
            .target_mask_attn(generate_autoregressive_mask(b, t, &device));
        let h = self.decoder_norm.forward(self.decoder.forward(input));
        self.project(h)
    }

    /// A decoding state for `memory`: cross-attention keys and values computed once.
    pub fn start(&self, memory: &Memory) -> DecoderState {
        let layers = self
            .decoder
            .layers
            .iter()
            .map(|l| LayerCache {
                cross_k: heads(&l.cross_attn, &l.cross_attn.key, memory.states.clone()),
                cross_v: heads(&l.cross_attn, &l.cross_attn.value, memory.states.clone()),
                self_kv: None,
            })
            .collect();
        DecoderState {
            layers,
            mask: memory.mask.clone(),
            step: 0,
        }
    }

    /// Feeds one token per row and returns next-token log-probabilities `[batch, vocab]`.
    pub fn step(&self, state: &mut DecoderState, tokens: Tensor<1, Int>) -> Tensor<2> {
        let [b] = tokens.dims();
        let mut x = self.embed(tokens.reshape([b, 1]), state.step);
        for (l, cache) in self.decoder.layers.iter().zip(&mut state.layers) {
            let h = l.norm_3.forward(x.clone());
            let q = heads(&l.self_attn, &l.self_attn.query, h.clone());
            let k = heads(&l.self_attn, &l.self_attn.key, h.clone());
            let v = heads(&l.self_attn, &l.self_attn.value, h);
            let (k, v) = match cache.self_kv.take() {
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                None => (k, v),
            };
            x = x + attend(&l.self_attn, q, k.clone(), v.clone(), None);
            cache.self_kv = Some((k, v));
            let h = l.norm_1.forward(x.clone());
            let q = heads(&l.cross_attn, &l.cross_attn.query, h);
            x = x + attend(
                &l.cross_attn,
                q,
                cache.cross_k.clone(),
                cache.cross_v.clone(),
                Some(state.mask.clone()),
            );
            let h = l.norm_2.forward(x.clone());
            x = x + l.pwff.forward(h);
        }
        state.step += 1;
        let logits = self.project(self.decoder_norm.forward(x));
        log_softmax(logits.reshape([b, self.vocab_size()]), 1)
    }
}

/// Per-layer cache of the incremental decoder.
#[derive(Debug, Clone)]
struct LayerCache {
    cross_k: Tensor<4>,
    cross_v: Tensor<4>,
    self_kv: Option<(Tensor<4>, Tensor<4>)>,
}

/// The state of incremental decoding for a batch (or a batch of beams).
#[derive(Debug, Clone)]
pub struct DecoderState {
    layers: Vec<LayerCache>,
    mask: Tensor<2, Bool>,
    step: usize,
}

impl DecoderState {
    /// Keeps rows `rows` (in that order; a row may repeat), e.g. to follow beams.
    pub fn select(&mut self, rows: Tensor<1, Int>) {
        for l in &mut self.layers {
            l.cross_k = l.cross_k.clone().select(0, rows.clone());
            l.cross_v = l.cross_v.clone().select(0, rows.clone());
            if let Some((k, v)) = l.self_kv.take() {
                l.self_kv = Some((k.select(0, rows.clone()), v.select(0, rows.clone())));
            }
        }
        self.mask = self.mask.clone().select(0, rows);
    }

    /// Tokens fed so far.
    pub fn step(&self) -> usize {
        self.step
    }
}

/// `[batch, len, d]` through `linear`, split into `[batch, heads, len, d_k]`.
fn heads(mha: &MultiHeadAttention, linear: &burn::nn::Linear, x: Tensor<3>) -> Tensor<4> {
    let [b, t, _] = x.dims();
    linear
        .forward(x)
        .reshape([b, t, mha.n_heads, mha.d_k])
        .swap_dims(1, 2)
}

/// Scaled dot-product attention of `q` over `k`/`v` (mask: true = ignore), then the output
/// projection: `[batch, q len, d_model]`.
fn attend(
    mha: &MultiHeadAttention,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<2, Bool>>,
) -> Tensor<3> {
    let [b, h, tq, dk] = q.dims();
    let mut scores = q.matmul(k.transpose()).div_scalar((dk as f32).sqrt());
    if let Some(mask) = mask {
        let [_, s] = mask.dims();
        scores = scores.mask_fill(mask.reshape([b, 1, 1, s]), mha.min_float);
    }
    let ctx = softmax(scores, 3).matmul(v);
    let ctx = ctx.swap_dims(1, 2).reshape([b, tq, h * dk]);
    mha.output.forward(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Seq2Seq, Device) {
        let device = Device::flex();
        let cfg = ModelConfig {
            d_model: 16,
            heads: 2,
            d_ff: 32,
            encoder_layers: 2,
            decoder_layers: 2,
            dropout: 0.0,
            max_len: 32,
        };
        (cfg.init(11, &device), device)
    }

    #[test]
    fn cached_steps_match_the_full_decoder() {
        let (m, device) = tiny();
        let src = Padded::new(&[vec![3, 4, 5, 2], vec![6, 2]], 0, &device);
        let memory = m.encode(&src);
        let tgt = vec![vec![1, 7, 8, 9], vec![1, 10, 7, 7]];
        let full = log_softmax(m.forward(&memory, Padded::new(&tgt, 0, &device).ids), 2);
        let mut state = m.start(&memory);
        for t in 0..4 {
            let tok: Vec<i64> = tgt.iter().map(|s| s[t] as i64).collect();
            let step = m.step(
                &mut state,
                Tensor::from_data(TensorData::new(tok, [2]), &device),
            );
            let want = full.clone().slice([0..2, t..t + 1, 0..11]).reshape([2, 11]);
            let diff: f32 = (step - want).abs().max().into_scalar();
            assert!(diff < 1e-4, "step {t}: max difference {diff}");
        }
    }

    #[test]
    fn selecting_rows_follows_the_chosen_beams() {
        let (m, device) = tiny();
        let src = Padded::new(&[vec![3, 4, 2], vec![5, 6, 2]], 0, &device);
        let memory = m.encode(&src);
        let mut a = m.start(&memory);
        let first = Tensor::from_data(TensorData::new(vec![1i64, 1], [2]), &device);
        m.step(&mut a, first);
        a.select(Tensor::from_data(
            TensorData::new(vec![1i64, 1], [2]),
            &device,
        ));
        let out = m.step(
            &mut a,
            Tensor::from_data(TensorData::new(vec![7i64, 7], [2]), &device),
        );
        let rows: Vec<f32> = out.into_data().try_to_vec().unwrap();
        assert_eq!(rows[..11], rows[11..], "both rows now follow source 1");
    }
}
