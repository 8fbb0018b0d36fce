//! sacreBLEU-compatible corpus BLEU and chrF, in pure Rust.
//!
//! This module replicates the default metrics of the Python
//! [`sacrebleu`](https://github.com/mjpost/sacrebleu) package, version
//! [`SACREBLEU_VERSION`], for the case of one reference per hypothesis:
//!
//! * [`corpus_bleu`]: `BLEU()` with its defaults: the `13a` tokenizer
//!   ([`tokenize_13a`]), mixed case, `smooth_method='exp'`, n-grams up to
//!   order 4 and no effective order.
//! * [`corpus_chrf`]: `CHRF()` with its defaults: character n-grams up to
//!   order 6, no word n-grams (plain chrF, not chrF++), beta 2, whitespace
//!   removed, mixed case and `eps_smoothing=False` (sacreBLEU's default: the
//!   precision and recall are averaged over the orders for which both the
//!   hypothesis and the reference have n-grams, then combined into one
//!   F-score; this is the `eff:yes` in its signature).
//!
//! Statistics are summed over the whole corpus before the score is computed,
//! exactly as `sacrebleu.corpus_bleu` / `sacrebleu.corpus_chrf` do. Whitespace
//! is what Python's `str.split()` / `str.isspace()` consider whitespace, which
//! is Unicode `White_Space` plus the ASCII separators U+001C..U+001F.
//!
//! The fixtures in `tests/fixtures/sacrebleu/` were produced by the Python
//! package itself (see `scripts/sacrebleu_fixtures.py`).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::Serialize;

/// The version of the Python `sacrebleu` package whose default BLEU and chrF
/// this module replicates (and whose signatures it reports).
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// Maximum word n-gram order of BLEU (sacreBLEU's `MAX_NGRAM_ORDER`).
const MAX_NGRAM_ORDER: usize = 4;

/// Maximum character n-gram order of chrF (sacreBLEU's `CHRF.CHAR_ORDER`).
const CHAR_ORDER: usize = 6;

/// chrF's beta (sacreBLEU's `CHRF.BETA`): recall weighs beta times as much as precision.
const BETA: f64 = 2.0;

/// What sacreBLEU's `my_log` returns for `log(0)`.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// Returned when the hypothesis and reference lists differ in length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// Number of hypotheses given.
    pub hyps: usize,
    /// Number of references given.
    pub refs: usize,
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the number of hypotheses ({}) and references ({}) differ",
            self.hyps, self.refs
        )
    }
}

impl std::error::Error for LengthMismatch {}

/// A corpus BLEU score with its sufficient statistics, as sacreBLEU's `BLEUScore`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// The BLEU score, between 0 and 100.
    pub score: f64,
    /// Clipped n-gram matches for orders 1 to 4, summed over the corpus.
    pub counts: [usize; 4],
    /// Hypothesis n-grams for orders 1 to 4, summed over the corpus.
    pub totals: [usize; 4],
    /// The (smoothed) n-gram precisions for orders 1 to 4, in percent.
    pub precisions: [f64; 4],
    /// The brevity penalty.
    pub bp: f64,
    /// Total number of hypothesis tokens.
    pub sys_len: usize,
    /// Total number of reference tokens.
    pub ref_len: usize,
}

/// A corpus chrF2 score, as sacreBLEU's `CHRFScore`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChrfScore {
    /// The chrF2 score, between 0 and 100.
    pub score: f64,
}

/// Python's `str.isspace()` for one character (`White_Space` plus U+001C..U+001F).
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `str.split()` with no arguments.
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Python's `str.rstrip()` with no arguments.
fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// The character class `[\{-\~\[-\` -\&\(-\+\:-\@\/]` of the 13a tokenizer:
/// every character in it gets a space on both sides.
fn is_13a_symbol(c: char) -> bool {
    matches!(
        c,
        '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/'
    )
}

/// Python's `re.sub` for a two-character pattern `(A)(B)`: scans left to
/// right, replacing each non-overlapping match and resuming after it.
fn sub_pairs(
    input: &[char],
    is_match: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char, &mut Vec<char>),
) -> Vec<char> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 2);
    let mut i = 0;
    while i < input.len() {
        match input.get(i + 1) {
            Some(&next) if is_match(input[i], next) => {
                replace(input[i], next, &mut out);
                i += 2;
            }
            _ => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

/// Tokenizes one line exactly as sacreBLEU's `Tokenizer13a` (mteval-v13a).
///
/// In order: removes `<skipped>`, joins `-\n` line breaks, turns other
/// newlines into spaces, unescapes `&quot;`, `&amp;`, `&lt;` and `&gt;` (one
/// after the other, as sacreBLEU does), then applies the `re` post-tokenizer:
/// spaces around the symbols ``{|}~[\]^_` !"#$%&()*+:;<=>?@/``, splits `.`
/// and `,` unless both neighbours are digits, splits `-` after a digit, and
/// finally collapses whitespace to single spaces with no leading or trailing
/// space.
///
/// ```
/// # use profundo_translate::sacrebleu::tokenize_13a;
/// assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
/// assert_eq!(tokenize_13a("It cost 3,000.50 dollars."), "It cost 3,000.50 dollars .");
/// ```
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }

    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 ", on " {line} "
    let mut chars: Vec<char> = Vec::with_capacity(line.len() + 2);
    for c in std::iter::once(' ')
        .chain(line.chars())
        .chain(std::iter::once(' '))
    {
        if is_13a_symbol(c) {
            chars.extend([' ', c, ' ']);
        } else {
            chars.push(c);
        }
    }

    let is_digit = |c: char| c.is_ascii_digit();
    let is_period_comma = |c: char| c == '.' || c == ',';

    // ([^0-9])([\.,]) -> "\1 \2 "
    let chars = sub_pairs(
        &chars,
        |a, b| !is_digit(a) && is_period_comma(b),
        |a, b, out| out.extend([a, ' ', b, ' ']),
    );
    // ([\.,])([^0-9]) -> " \1 \2"
    let chars = sub_pairs(
        &chars,
        |a, b| is_period_comma(a) && !is_digit(b),
        |a, b, out| out.extend([' ', a, ' ', b]),
    );
    // ([0-9])(-) -> "\1 \2 "
    let chars = sub_pairs(
        &chars,
        |a, b| is_digit(a) && b == '-',
        |a, b, out| out.extend([a, ' ', b, ' ']),
    );

    let joined: String = chars.into_iter().collect();
    py_split(&joined).collect::<Vec<_>>().join(" ")
}

/// Counts the n-grams of order `n` in `items`, keyed by their slices.
fn ngram_counts<T: Eq + Hash>(items: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts = HashMap::new();
    if n > 0 {
        for gram in items.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// Sum of `min(hyp_count, ref_count)` over the hypothesis n-grams.
fn clipped_matches<T: Eq + Hash>(
    hyp: &HashMap<&[T], usize>,
    reference: &HashMap<&[T], usize>,
) -> usize {
    hyp.iter()
        .map(|(gram, &count)| reference.get(gram).map_or(0, |&r| count.min(r)))
        .sum()
}

/// Checks that there is one reference per hypothesis.
fn check_lengths(hyps: usize, refs: usize) -> Result<(), LengthMismatch> {
    if hyps == refs {
        Ok(())
    } else {
        Err(LengthMismatch { hyps, refs })
    }
}

/// sacreBLEU's `my_log`: the natural log, with `log(0)` floored to -9999999999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 { LOG_ZERO } else { x.ln() }
}

/// sacreBLEU's `BLEU.compute_bleu` for `smooth_method='exp'`, order 4, no effective order.
fn compute_bleu(
    counts: [usize; 4],
    totals: [usize; 4],
    sys_len: usize,
    ref_len: usize,
) -> BleuScore {
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };

    let mut precisions = [0.0_f64; MAX_NGRAM_ORDER];
    let mut result = BleuScore {
        score: 0.0,
        counts,
        totals,
        precisions,
        bp,
        sys_len,
        ref_len,
    };

    // Early stop if there are no matches at all (sacreBLEU #141).
    if counts.iter().all(|&c| c == 0) {
        return result;
    }

    let mut smooth_mteval = 1.0_f64;
    for n in 0..MAX_NGRAM_ORDER {
        if totals[n] == 0 {
            // The remaining precisions stay 0, so the score is 0.
            break;
        }
        precisions[n] = if counts[n] == 0 {
            smooth_mteval *= 2.0;
            100.0 / (smooth_mteval * totals[n] as f64)
        } else {
            100.0 * counts[n] as f64 / totals[n] as f64
        };
    }

    let log_sum = precisions.iter().fold(0.0_f64, |acc, &p| acc + my_log(p));
    result.score = bp * (log_sum / MAX_NGRAM_ORDER as f64).exp();
    result.precisions = precisions;
    result
}

/// Corpus BLEU with sacreBLEU's defaults and one reference per hypothesis.
///
/// Equivalent to `sacrebleu.corpus_bleu(hyps, [refs])` (13a tokenization,
/// mixed case, `exp` smoothing, order 4, no effective order): each line is
/// right-stripped and tokenized with [`tokenize_13a`], clipped n-gram matches,
/// hypothesis n-gram totals and lengths are summed over the corpus, and the
/// score is the brevity penalty times the geometric mean of the four
/// precisions. An order with no match gets the precision
/// `100 / (2^k * total)`, `k` counting the zero-match orders so far; an order
/// with no hypothesis n-grams at all (every hypothesis shorter than `n`
/// tokens) makes the score 0, as does a corpus without a single match.
///
/// An empty corpus scores 0 (sacreBLEU itself raises on an empty list).
///
/// # Errors
///
/// [`LengthMismatch`] when `hyps` and `refs` differ in length.
pub fn corpus_bleu(
    hyps: &[impl AsRef<str>],
    refs: &[impl AsRef<str>],
) -> Result<BleuScore, LengthMismatch> {
    check_lengths(hyps.len(), refs.len())?;

    let mut counts = [0usize; MAX_NGRAM_ORDER];
    let mut totals = [0usize; MAX_NGRAM_ORDER];
    let mut sys_len = 0usize;
    let mut ref_len = 0usize;

    for (hyp, reference) in hyps.iter().zip(refs) {
        let hyp_tok = tokenize_13a(py_rstrip(hyp.as_ref()));
        let ref_tok = tokenize_13a(py_rstrip(reference.as_ref()));
        let hyp_words: Vec<&str> = py_split(&hyp_tok).collect();
        let ref_words: Vec<&str> = py_split(&ref_tok).collect();

        sys_len += hyp_words.len();
        ref_len += ref_words.len();

        for n in 1..=MAX_NGRAM_ORDER {
            let hyp_grams = ngram_counts(&hyp_words, n);
            let ref_grams = ngram_counts(&ref_words, n);
            totals[n - 1] += hyp_grams.values().sum::<usize>();
            counts[n - 1] += clipped_matches(&hyp_grams, &ref_grams);
        }
    }

    Ok(compute_bleu(counts, totals, sys_len, ref_len))
}

/// sacreBLEU's `CHRF._compute_f_score` with `eps_smoothing=False`.
///
/// `stats[i]` is `[hyp, ref, match]` for character order `i + 1`.
fn compute_chrf(stats: &[[usize; 3]; CHAR_ORDER]) -> f64 {
    let factor = BETA * BETA;
    let mut avg_prec = 0.0_f64;
    let mut avg_rec = 0.0_f64;
    let mut effective_order = 0usize;

    for &[n_hyp, n_ref, n_match] in stats {
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            effective_order += 1;
        }
    }

    if effective_order == 0 {
        avg_prec = 0.0;
        avg_rec = 0.0;
    } else {
        avg_prec /= effective_order as f64;
        avg_rec /= effective_order as f64;
    }

    if avg_prec + avg_rec != 0.0 {
        let mut score = (1.0 + factor) * avg_prec * avg_rec;
        score /= (factor * avg_prec) + avg_rec;
        100.0 * score
    } else {
        0.0
    }
}

/// Corpus chrF2 with sacreBLEU's defaults and one reference per hypothesis.
///
/// Equivalent to `sacrebleu.corpus_chrf(hyps, [refs])`: all whitespace is
/// removed from each line, character n-grams of orders 1 to 6 are counted
/// (hypothesis n-grams, reference n-grams, clipped matches; the hypothesis
/// count of an order is 0 when the reference has no n-gram of that order), the
/// counts are summed over the corpus, precision and recall are averaged over
/// the orders where both the hypothesis and reference counts are non-zero, and
/// the score is their F-beta (beta = 2) in percent, or 0 when no order counts.
///
/// An empty corpus scores 0 (sacreBLEU itself raises on an empty list).
///
/// # Errors
///
/// [`LengthMismatch`] when `hyps` and `refs` differ in length.
pub fn corpus_chrf(
    hyps: &[impl AsRef<str>],
    refs: &[impl AsRef<str>],
) -> Result<ChrfScore, LengthMismatch> {
    check_lengths(hyps.len(), refs.len())?;

    let mut stats = [[0usize; 3]; CHAR_ORDER];
    for (hyp, reference) in hyps.iter().zip(refs) {
        let hyp_chars: Vec<char> = hyp.as_ref().chars().filter(|&c| !is_py_space(c)).collect();
        let ref_chars: Vec<char> = reference
            .as_ref()
            .chars()
            .filter(|&c| !is_py_space(c))
            .collect();

        for (n, order_stats) in (1..=CHAR_ORDER).zip(stats.iter_mut()) {
            let hyp_grams = ngram_counts(&hyp_chars, n);
            let ref_grams = ngram_counts(&ref_chars, n);
            let ref_count: usize = ref_grams.values().sum();
            let hyp_count = if ref_grams.is_empty() {
                0
            } else {
                hyp_grams.values().sum()
            };
            order_stats[0] += hyp_count;
            order_stats[1] += ref_count;
            order_stats[2] += clipped_matches(&hyp_grams, &ref_grams);
        }
    }

    Ok(ChrfScore {
        score: compute_chrf(&stats),
    })
}

/// The signature sacreBLEU prints for [`corpus_bleu`]'s settings
/// (`BLEU().get_signature().format()` after scoring with one reference).
pub fn bleu_signature() -> String {
    format!("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}")
}

/// The signature sacreBLEU prints for [`corpus_chrf`]'s settings
/// (`CHRF().get_signature().format()` after scoring with one reference).
pub fn chrf_signature() -> String {
    format!("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{SACREBLEU_VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_punctuation() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_13a("I don't know."), "I don't know .");
        assert_eq!(tokenize_13a("(hi) [x] {y} 50%"), "( hi ) [ x ] { y } 50 %");
        assert_eq!(tokenize_13a("x.,y"), "x . , y");
        assert_eq!(tokenize_13a("..."), ". . .");
        assert_eq!(tokenize_13a("e.g. U.S.A."), "e . g . U . S . A .");
    }

    #[test]
    fn tokenizer_numbers_and_dashes() {
        assert_eq!(
            tokenize_13a("The total was 3,000.50 dollars."),
            "The total was 3,000.50 dollars ."
        );
        assert_eq!(tokenize_13a("1.a ,5 a,b"), "1 . a , 5 a , b");
        assert_eq!(
            tokenize_13a("state-of-the-art in 2023-2024"),
            "state-of-the-art in 2023 - 2024"
        );
    }

    #[test]
    fn tokenizer_entities_skipped_and_newlines() {
        assert_eq!(
            tokenize_13a("Ella dijo &quot;hola&quot; &amp; se fue"),
            "Ella dijo \" hola \" & se fue"
        );
        assert_eq!(tokenize_13a("&lt;b&gt;"), "< b >");
        assert_eq!(tokenize_13a("a<skipped>b"), "ab");
        assert_eq!(tokenize_13a("wait-\nfor it\nnow"), "waitfor it now");
        assert_eq!(tokenize_13a("  \u{a0}\t "), "");
    }

    #[test]
    fn perfect_match_is_100() {
        let lines = [
            "The cat sat on the mat.",
            "Una frase perfecta, sin errores.",
        ];
        let bleu = corpus_bleu(&lines, &lines).expect("same length");
        assert!((bleu.score - 100.0).abs() < 1e-9, "{bleu:?}");
        assert_eq!(bleu.bp, 1.0);
        assert_eq!(bleu.counts, bleu.totals);
        let chrf = corpus_chrf(&lines, &lines).expect("same length");
        assert!((chrf.score - 100.0).abs() < 1e-9, "{chrf:?}");
    }

    #[test]
    fn empty_hypothesis_is_0() {
        let bleu = corpus_bleu(&[""], &["The cat sat on the mat."]).expect("same length");
        assert_eq!(bleu.score, 0.0);
        assert_eq!(bleu.bp, 0.0);
        assert_eq!(bleu.sys_len, 0);
        assert_eq!(bleu.ref_len, 7);
        let chrf = corpus_chrf(&[""], &["The cat sat on the mat."]).expect("same length");
        assert_eq!(chrf.score, 0.0);
    }

    #[test]
    fn empty_corpus_is_0() {
        let none: [&str; 0] = [];
        let bleu = corpus_bleu(&none, &none).expect("same length");
        assert_eq!(bleu.score, 0.0);
        assert_eq!(bleu.bp, 1.0);
        assert_eq!(corpus_chrf(&none, &none).expect("same length").score, 0.0);
    }

    #[test]
    fn exp_smoothing_doubles_per_zero_order() {
        // Hypothesis "a b c d e" vs reference "a b x c d": 1-grams 4/5,
        // 2-grams 2/4, 3-grams 0/3, 4-grams 0/2.
        let bleu = corpus_bleu(&["a b c d e"], &["a b x c d"]).expect("same length");
        assert_eq!(bleu.counts, [4, 2, 0, 0]);
        assert_eq!(bleu.totals, [5, 4, 3, 2]);
        let expected = [80.0, 50.0, 100.0 / (2.0 * 3.0), 100.0 / (4.0 * 2.0)];
        for (p, e) in bleu.precisions.iter().zip(expected) {
            assert!((p - e).abs() < 1e-12);
        }
        let geo = expected.iter().map(|p| p.ln()).sum::<f64>() / 4.0;
        assert!((bleu.score - geo.exp()).abs() < 1e-9);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = corpus_bleu(&["a", "b"], &["a"]).expect_err("lengths differ");
        assert_eq!(err, LengthMismatch { hyps: 2, refs: 1 });
        assert!(err.to_string().contains('2'));
        let err = corpus_chrf(&["a"], &["a", "b", "c"]).expect_err("lengths differ");
        assert_eq!(err, LengthMismatch { hyps: 1, refs: 3 });
    }

    #[test]
    fn signatures_name_the_version() {
        assert_eq!(
            bleu_signature(),
            format!("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}")
        );
        assert!(chrf_signature().starts_with("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|"));
    }
}
