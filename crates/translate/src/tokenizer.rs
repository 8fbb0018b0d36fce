//! The shared subword vocabulary of both languages: byte-level BPE trained with the
//! `tokenizers` crate and saved as `tokenizer.json`. Every byte is in the alphabet, so text
//! never seen in training still encodes (to byte pieces) instead of becoming `<unk>`.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TokenizerBuilder,
};

use crate::error::{Result, TranslateError};

/// Padding.
pub const PAD: &str = "<pad>";
/// Start of a target sentence.
pub const BOS: &str = "<s>";
/// End of a sentence.
pub const EOS: &str = "</s>";
/// The tokenizer's file name in a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The target-language tag token, e.g. `<2en>`, put in front of the source.
pub fn lang_tag(lang: &str) -> String {
    format!("<2{lang}>")
}

/// A trained subword tokenizer plus the ids of its special tokens.
#[derive(Debug, Clone)]
pub struct Subword {
    tokenizer: Tokenizer,
    /// Padding id.
    pub pad: u32,
    /// Start-of-target id.
    pub bos: u32,
    /// End-of-sentence id.
    pub eos: u32,
    tags: HashMap<String, u32>,
}

fn tok_err(path: Option<&Path>, e: impl std::fmt::Display) -> TranslateError {
    TranslateError::Tokenizer {
        path: path.map(Path::to_path_buf),
        message: e.to_string(),
    }
}

/// Checks that every merge of a BPE model in a `tokenizer.json` joins two vocabulary
/// tokens into a third (the continuing-subword prefix dropped from the second).
fn check_bpe_merges(json: &serde_json::Value) -> std::result::Result<(), String> {
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Ok(());
    }
    let Some(vocab) = model["vocab"].as_object() else {
        return Err("the BPE model has no `vocab` table".into());
    };
    let prefix = model["continuing_subword_prefix"].as_str().unwrap_or("");
    let merges = model["merges"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (k, m) in merges.iter().enumerate() {
        use serde_json::Value;
        let pair = match m {
            Value::String(s) => s.split_once(' '),
            Value::Array(p) => match p.as_slice() {
                [Value::String(a), Value::String(b)] => Some((a.as_str(), b.as_str())),
                _ => None,
            },
            _ => None,
        };
        let Some((a, b)) = pair else {
            return Err(format!("merge {k} is not a pair of tokens: {m}"));
        };
        let joined = b.strip_prefix(prefix).map(|rest| format!("{a}{rest}"));
        let known = vocab.contains_key(a) && vocab.contains_key(b);
        if !known || !joined.is_some_and(|j| vocab.contains_key(&j)) {
            return Err(format!(
                "merge {k} (`{a}` + `{b}`) does not join two vocabulary tokens into a third"
            ));
        }
    }
    Ok(())
}

impl Subword {
    /// Trains a byte-level BPE vocabulary of `vocab_size` on `texts`, with the special
    /// tokens and one tag per language in `langs`.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        langs: &[String],
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self> {
        let mut special: Vec<AddedToken> = [PAD, BOS, EOS]
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        special.extend(langs.iter().map(|l| AddedToken::from(lang_tag(l), true)));
        let trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .special_tokens(special)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        let mut tokenizer: Tokenizer = TokenizerBuilder::<
            ModelWrapper,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(ModelWrapper::BPE(BPE::default()))
        .with_normalizer(Some(NFC.into()))
        .with_pre_tokenizer(Some(ByteLevel::new(true, true, true).into()))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevelDecoder::default().into()))
        .build()
        .map_err(|e| tok_err(None, e))?
        .into();
        tokenizer
            .train(&mut trainer, texts)
            .map_err(|e| tok_err(None, e))?;
        Self::from_tokenizer(tokenizer, langs, None)
    }

    fn from_tokenizer(tokenizer: Tokenizer, langs: &[String], path: Option<&Path>) -> Result<Self> {
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| tok_err(path, format!("has no `{t}` token")))
        };
        let mut tags = HashMap::new();
        for l in langs {
            tags.insert(l.clone(), id(&lang_tag(l))?);
        }
        Ok(Self {
            pad: id(PAD)?,
            bos: id(BOS)?,
            eos: id(EOS)?,
            tags,
            tokenizer,
        })
    }

    /// Reads `tokenizer.json`; `langs` must all have tags in it and the vocabulary must
    /// have `vocab_size` entries (the model's output size).
    pub fn load(path: &Path, langs: &[String], vocab_size: usize) -> Result<Self> {
        let s = Self::open(path, langs)?;
        if s.vocab_size() != vocab_size {
            return Err(tok_err(
                Some(path),
                format!(
                    "has {} tokens but the model was trained with {vocab_size}: it is not this model's tokenizer",
                    s.vocab_size()
                ),
            ));
        }
        Ok(s)
    }

    /// Reads `tokenizer.json`; `langs` must all have tags in it.
    pub fn open(path: &Path, langs: &[String]) -> Result<Self> {
        if !path.is_file() {
            return Err(tok_err(
                Some(path),
                "missing: a model directory needs the tokenizer it was trained with",
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| tok_err(Some(path), e))?;
        // Checked as JSON first: tokenizers 0.23 panics (instead of returning an error) on
        // a syntax error inside the `decoder` section.
        let json = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| tok_err(Some(path), format!("not valid JSON: {e}")))?;
        // It also panics on merges that do not fit the vocabulary: checked here first, and
        // any other panic of the library is turned into this file's error.
        check_bpe_merges(&json).map_err(|m| tok_err(Some(path), m))?;
        let tokenizer: Tokenizer = std::panic::catch_unwind(|| text.parse::<Tokenizer>())
            .map_err(|_| tok_err(Some(path), "corrupt: the tokenizers library cannot read it"))?
            .map_err(|e| tok_err(Some(path), e))?;
        Self::from_tokenizer(tokenizer, langs, Some(path))
    }

    /// Writes `tokenizer.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self
            .tokenizer
            .to_string(false)
            .map_err(|e| tok_err(Some(path), e))?;
        profundo_core::fsutil::write_atomic(path, json.as_bytes())?;
        Ok(())
    }

    /// Number of tokens, special ones included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The tag id of target language `lang`.
    pub fn tag(&self, lang: &str) -> Option<u32> {
        self.tags.get(lang).copied()
    }

    /// Token ids of `text` (no special tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| tok_err(None, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of many texts, in parallel.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), false)
            .map_err(|e| tok_err(None, e))?;
        Ok(encs.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let text = self
            .tokenizer
            .decode(ids, true)
            .map_err(|e| tok_err(None, e))?;
        Ok(text.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<String> {
        vec!["en".into(), "es".into()]
    }

    fn trained() -> Subword {
        let texts = [
            "¿Dónde está la biblioteca?",
            "Where is the library?",
            "La biblioteca está cerrada.",
            "The library is closed.",
        ];
        Subword::train(texts.iter().copied(), &langs(), 400, 1).unwrap()
    }

    #[test]
    fn round_trips_text_including_unseen_characters() {
        let s = trained();
        for text in ["¿Dónde está la biblioteca?", "日本語 ☃ naïve", "a b"] {
            let ids = s.encode(text).unwrap();
            assert!(!ids.is_empty());
            let back = s.decode(&ids).unwrap();
            assert_eq!(back, crate::corpus::normalize(text), "{text}");
        }
        assert_ne!(s.tag("en"), s.tag("es"));
        assert!(s.tag("fr").is_none());
    }

    #[test]
    fn load_checks_the_file_and_the_vocabulary_size() {
        let s = trained();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(TOKENIZER_FILE);
        let err = Subword::load(&p, &langs(), s.vocab_size())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
        s.save(&p).unwrap();
        let back = Subword::load(&p, &langs(), s.vocab_size()).unwrap();
        assert_eq!(back.encode("hola").unwrap(), s.encode("hola").unwrap());
        let err = Subword::load(&p, &langs(), s.vocab_size() + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not this model's tokenizer"), "{err}");
        std::fs::write(&p, "{not json").unwrap();
        assert!(Subword::load(&p, &langs(), s.vocab_size()).is_err());
    }

    #[test]
    fn merges_that_do_not_fit_the_vocabulary_are_an_error_not_a_panic() {
        let s = trained();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(TOKENIZER_FILE);
        s.save(&p).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        // The two longest tokens merged: longer than any token (tokenizers 0.23 panics).
        let mut tokens: Vec<String> = json["model"]["vocab"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.len()));
        json["model"]["merges"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!([tokens[0], tokens[1]]));
        std::fs::write(&p, json.to_string()).unwrap();
        let err = Subword::open(&p, &langs())
            .expect_err("an error")
            .to_string();
        assert!(
            err.contains("merge") && err.contains(TOKENIZER_FILE),
            "{err}"
        );
    }
}
