//! Training examples (tagged source, target) as token ids, and length-bucketed batches so
//! little compute goes to padding.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::corpus::ParallelCorpus;
use crate::error::{Result, TranslateError};
use crate::tokenizer::Subword;

/// A translation direction, written `es-en`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Direction {
    /// Source language.
    pub from: String,
    /// Target language.
    pub to: String,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

impl std::str::FromStr for Direction {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('-') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && a != b => Ok(Self {
                from: a.to_string(),
                to: b.to_string(),
            }),
            _ => Err(TranslateError::config(
                "directions",
                format!("`{s}` is not a direction like `es-en`"),
            )),
        }
    }
}

impl Serialize for Direction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Direction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Direction {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Direction".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(g)
    }
}

impl Direction {
    /// The column indices (source, target) of this direction in `corpus`.
    pub fn sides(&self, corpus: &ParallelCorpus) -> Result<(usize, usize)> {
        match (corpus.side(&self.from), corpus.side(&self.to)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(TranslateError::config(
                "directions",
                format!(
                    "{self}: the corpus has languages {} and {}",
                    corpus.languages[0], corpus.languages[1]
                ),
            )),
        }
    }
}

/// One training or evaluation example as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// `<2xx> source </s>`.
    pub src: Vec<u32>,
    /// Target tokens without specials.
    pub tgt: Vec<u32>,
}

/// The id of the tag that asks for a translation into `to`.
pub fn target_tag(tok: &Subword, to: &str) -> Result<u32> {
    tok.tag(to).ok_or_else(|| TranslateError::Tokenizer {
        path: None,
        message: format!("the model cannot translate into `{to}` (no `<2{to}>` tag)"),
    })
}

/// `tag ids </s>`, with `ids` cut so that the whole fits in `max_len` tokens.
pub fn tagged(tag: u32, mut ids: Vec<u32>, eos: u32, max_len: usize) -> Vec<u32> {
    ids.truncate(max_len.saturating_sub(2));
    let mut src = Vec::with_capacity(ids.len() + 2);
    src.push(tag);
    src.extend(ids);
    src.push(eos);
    src
}

/// The model input for `text` translated into `to`: tag, tokens, end; truncated to
/// `max_len` tokens.
pub fn source_ids(tok: &Subword, text: &str, to: &str, max_len: usize) -> Result<Vec<u32>> {
    Ok(tagged(
        target_tag(tok, to)?,
        tok.encode(text)?,
        tok.eos,
        max_len,
    ))
}

/// Examples of `pairs` (indices into `corpus`) in every direction.
pub fn examples(
    corpus: &ParallelCorpus,
    pairs: &[u32],
    directions: &[Direction],
    tok: &Subword,
    max_len: usize,
) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(pairs.len() * directions.len());
    for d in directions {
        let (s, t) = d.sides(corpus)?;
        let texts: Vec<(&str, &str)> = pairs
            .iter()
            .map(|&i| {
                let p = &corpus.pairs[i as usize];
                (p[s].as_str(), p[t].as_str())
            })
            .collect();
        let srcs = tok.encode_batch(&texts.iter().map(|x| x.0).collect::<Vec<_>>())?;
        let tgts = tok.encode_batch(&texts.iter().map(|x| x.1).collect::<Vec<_>>())?;
        let tag = target_tag(tok, &d.to)?;
        for (src, mut tgt) in srcs.into_iter().zip(tgts) {
            tgt.truncate(max_len - 1);
            out.push(Example {
                src: tagged(tag, src, tok.eos, max_len),
                tgt,
            });
        }
    }
    Ok(out)
}

/// Groups `examples` into batches of similar lengths holding at most `batch_tokens` padded
/// tokens (source + target) each, in a seeded random order.
pub fn batches(examples: &[Example], batch_tokens: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<u32> = (0..examples.len() as u32).collect();
    order.shuffle(&mut rng);
    // Stable sort keeps the shuffled order within a length bucket.
    order.sort_by_key(|&i| {
        let e = &examples[i as usize];
        (e.src.len(), e.tgt.len())
    });
    let mut out = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let (mut max_s, mut max_t) = (0, 0);
    for i in order {
        let e = &examples[i as usize];
        let (s, t) = (max_s.max(e.src.len()), max_t.max(e.tgt.len() + 1));
        if !cur.is_empty() && (cur.len() + 1) * (s + t) > batch_tokens {
            out.push(std::mem::take(&mut cur));
            (max_s, max_t) = (0, 0);
        }
        max_s = max_s.max(e.src.len());
        max_t = max_t.max(e.tgt.len() + 1);
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.shuffle(&mut rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_parse_and_print() {
        let d: Direction = "es-en".parse().unwrap();
        assert_eq!((d.from.as_str(), d.to.as_str()), ("es", "en"));
        assert_eq!(d.to_string(), "es-en");
        assert!("es".parse::<Direction>().is_err());
        assert!("en-en".parse::<Direction>().is_err());
    }

    #[test]
    fn batches_cover_every_example_once_within_the_token_budget() {
        let examples: Vec<Example> = (0..500)
            .map(|i| Example {
                src: vec![1; 2 + i % 17],
                tgt: vec![1; 1 + (i * 7) % 23],
            })
            .collect();
        let bs = batches(&examples, 256, 3);
        let mut seen: Vec<u32> = bs.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<u32>>());
        for b in &bs {
            let s = b
                .iter()
                .map(|&i| examples[i as usize].src.len())
                .max()
                .unwrap();
            let t = b
                .iter()
                .map(|&i| examples[i as usize].tgt.len() + 1)
                .max()
                .unwrap();
            assert!(b.len() == 1 || b.len() * (s + t) <= 256);
        }
        assert_eq!(bs, batches(&examples, 256, 3));
    }
}
