#!/usr/bin/env python3
"""Generate the sacreBLEU reference fixtures for `profundo_translate::sacrebleu`.

Setup (pinned version; the Rust module's SACREBLEU_VERSION must match):

    python3 -m venv /tmp/sbvenv
    /tmp/sbvenv/bin/pip install 'sacrebleu==2.6.0'

Run from the repository root:

    /tmp/sbvenv/bin/python scripts/sacrebleu_fixtures.py

It writes crates/translate/tests/fixtures/sacrebleu/cases.json (every case scored
with sacreBLEU's default corpus BLEU and chrF2, one reference per hypothesis) and
signatures.json (the signature strings for those defaults). The output is fully
deterministic: the cases are spelled out below, no randomness is involved.
"""

import json
import sys
from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

PINNED_VERSION = "2.6.0"

OUT_DIR = (
    Path(__file__).resolve().parent.parent
    / "crates"
    / "translate"
    / "tests"
    / "fixtures"
    / "sacrebleu"
)

# ---------------------------------------------------------------------------
# Hand-written cases
# ---------------------------------------------------------------------------

CASES = [
    {
        "name": "spanish_english_punct_accents",
        "hyps": [
            "El niño comió una manzana roja, y después se durmió.",
            "¿Dónde está la estación de tren?",
            "The children were playing in the park; it was sunny!",
            "Mañana iremos a la playa con mis padres.",
        ],
        "refs": [
            "El niño se comió una manzana roja y luego se durmió.",
            "¿Dónde está la estación del tren?",
            "The kids were playing in the park: it was a sunny day!",
            "Mañana vamos a ir a la playa con mis padres.",
        ],
    },
    {
        "name": "quotes_apostrophes",
        "hyps": [
            "I don't think she's coming, he said.",
            'Ella dijo "hola" y se fue.',
            "It's John's car, isn't it?",
            "'Quoted' words and `backticks` too.",
        ],
        "refs": [
            'I don\'t think she\'s coming," he said.',
            "Ella dijo «hola» y se marchó.",
            "It is John's car, isn't it?",
            "'Quoted' words and `backticks`, too.",
        ],
    },
    {
        "name": "numbers_commas_periods_hyphens",
        "hyps": [
            "The total was 3,000.50 dollars in 2023-2024.",
            "El precio subió un 12,5 % hasta 1.200 euros.",
            "A well-known state-of-the-art model scored 0.75.",
            "Call 555-1234 before 10.30, or after 5 p.m.",
            "Pages 10-20, 30 - 40 and 50--60.",
        ],
        "refs": [
            "The total was $3,000.50 in 2023-2024.",
            "El precio subió un 12,5 % hasta los 1.200 euros.",
            "A well-known, state-of-the-art model scored .75.",
            "Call 555-1234 before 10.30 or after 5 p.m.",
            "Pages 10-20, 30-40, and 50--60.",
        ],
    },
    {
        "name": "empty_hypothesis",
        "hyps": ["", "The cat sat on the mat ."],
        "refs": ["Something was said here.", "The cat sat on the mat."],
    },
    {
        "name": "all_empty_hypotheses",
        "hyps": ["", "   "],
        "refs": ["A reference that is not empty.", "Another one."],
    },
    {
        "name": "short_hypotheses_brevity_penalty",
        "hyps": [
            "The quick brown fox jumps.",
            "She reads books.",
            "We went to the market in the morning.",
        ],
        "refs": [
            "The quick brown fox jumps over the lazy dog.",
            "She reads a lot of books every single week.",
            "We went to the market early in the morning to buy fresh bread.",
        ],
    },
    {
        "name": "zero_4gram_matches_smoothing",
        "hyps": [
            "red apple green pear blue sky",
            "one two three",
            "cats like milk and dogs like bones",
        ],
        "refs": [
            "red apple and green pear under blue sky",
            "one two four",
            "cats like milk but dogs like bones",
        ],
    },
    {
        "name": "smoothing_two_zero_orders",
        "hyps": ["the big dog barked at the small red cat", "blue sea"],
        "refs": ["a big dog and a small red car barked", "blue ocean waves"],
    },
    {
        "name": "too_short_for_4grams",
        "hyps": ["Hello world .", "Yes"],
        "refs": ["Hello world .", "Yes"],
    },
    {
        "name": "no_matches_at_all",
        "hyps": ["alpha beta gamma delta epsilon"],
        "refs": ["uno dos tres cuatro cinco"],
    },
    {
        "name": "mixed_case_differences",
        "hyps": [
            "THE WEATHER IS NICE TODAY.",
            "the President of the United States spoke.",
            "Madrid Es La Capital De España.",
        ],
        "refs": [
            "The weather is nice today.",
            "The president of the United States spoke.",
            "Madrid es la capital de España.",
        ],
    },
    {
        "name": "html_entities_and_skipped",
        "hyps": [
            "Tom &amp; Jerry said &quot;hi&quot; &lt;loudly&gt;.",
            "R&amp;D costs rose &amp;amp; fell <skipped> again.",
            "Fish &amp chips &#39;n&#39; peas.",
            "line one-\nline two\nline three",
        ],
        "refs": [
            'Tom & Jerry said "hi" <loudly>.',
            "R&D costs rose & fell again.",
            "Fish & chips 'n' peas.",
            "line oneline two line three",
        ],
    },
    {
        "name": "perfect_match",
        "hyps": [
            "This sentence is translated perfectly, word for word.",
            "Esta frase también es perfecta.",
        ],
        "refs": [
            "This sentence is translated perfectly, word for word.",
            "Esta frase también es perfecta.",
        ],
    },
    {
        "name": "unicode_whitespace_and_trailing_space",
        "hyps": [
            "Hola\u00a0mundo\u3000grande  \t",
            "tabs\tand\u2009thin spaces.\u202f",
        ],
        "refs": [
            "Hola mundo grande",
            "tabs and thin spaces .",
        ],
    },
]

# ---------------------------------------------------------------------------
# A larger corpus (50 lines): references written by hand, hypotheses derived by
# fixed, deterministic edits so the scores are somewhere in the middle.
# ---------------------------------------------------------------------------

LARGE_REFS = [
    "The committee approved the new budget on Tuesday afternoon.",
    "La comisión aprobó el nuevo presupuesto el martes por la tarde.",
    "Heavy rain caused flooding in several northern towns.",
    "Las lluvias intensas provocaron inundaciones en varios pueblos del norte.",
    "She has worked as a nurse for more than twenty years.",
    "Ha trabajado como enfermera durante más de veinte años.",
    "The museum will reopen to the public next spring.",
    "El museo volverá a abrir al público la próxima primavera.",
    "Prices rose by 2.5% in March, according to official data.",
    "Los precios subieron un 2,5 % en marzo, según datos oficiales.",
    "He said he didn't know where the keys were.",
    "Dijo que no sabía dónde estaban las llaves.",
    "The train to Barcelona leaves at 8:45 from platform 3.",
    "El tren a Barcelona sale a las 8:45 del andén 3.",
    "Scientists discovered a new species of frog in the rainforest.",
    "Los científicos descubrieron una nueva especie de rana en la selva.",
    "Our team won the final match 3-1 after extra time.",
    "Nuestro equipo ganó la final 3-1 tras la prórroga.",
    "Please read the instructions carefully before you begin.",
    "Por favor, lea las instrucciones con atención antes de empezar.",
    "The company hired 1,200 new employees last year.",
    "La empresa contrató a 1.200 nuevos empleados el año pasado.",
    "It's the first time I've seen snow in this city.",
    "Es la primera vez que veo nieve en esta ciudad.",
    "The minister refused to comment on the \"leaked\" report.",
    "El ministro se negó a comentar el informe \"filtrado\".",
    "Children under five travel free on all buses.",
    "Los niños menores de cinco años viajan gratis en todos los autobuses.",
    "The bridge, built in 1890, is still in use today.",
    "El puente, construido en 1890, sigue en uso hoy en día.",
    "We need more volunteers for the weekend food drive.",
    "Necesitamos más voluntarios para la recogida de alimentos del fin de semana.",
    "The doctor recommended rest and plenty of water.",
    "La médica recomendó descanso y mucha agua.",
    "A well-known author will give a talk at the library.",
    "Un autor muy conocido dará una charla en la biblioteca.",
    "The festival attracted about 50,000 visitors this year.",
    "El festival atrajo a unos 50.000 visitantes este año.",
    "Do you know what time the shop opens on Sundays?",
    "¿Sabes a qué hora abre la tienda los domingos?",
    "The old factory was turned into a community center.",
    "La antigua fábrica se convirtió en un centro comunitario.",
    "Farmers are worried about the long, dry summer.",
    "Los agricultores están preocupados por el largo y seco verano.",
    "The police closed the road for several hours.",
    "La policía cortó la carretera durante varias horas.",
    "Tickets cost €15 for adults & €7.50 for students.",
    "Las entradas cuestan 15 € para adultos y 7,50 € para estudiantes.",
    "I'll call you as soon as I arrive at the hotel.",
    "Te llamaré en cuanto llegue al hotel.",
]

SYNONYMS = {
    "new": "recent",
    "nuevo": "reciente",
    "nueva": "otra",
    "several": "many",
    "varios": "muchos",
    "more": "over",
    "más": "sobre",
    "public": "people",
    "público": "pueblo",
    "according": "due",
    "según": "por",
    "the": "a",
    "la": "una",
    "el": "un",
    "los": "unos",
}


def derive_hypothesis(i: int, ref: str) -> str:
    """Deterministic, rule-based 'system output' for reference line `i`."""
    words = ref.split()
    rule = i % 6
    if rule == 0:
        # identical
        return ref
    if rule == 1:
        # drop the last word (usually takes the final punctuation with it)
        return " ".join(words[:-1])
    if rule == 2:
        # swap the second and third words
        if len(words) > 3:
            words[1], words[2] = words[2], words[1]
        return " ".join(words)
    if rule == 3:
        # replace the first word that has a synonym and lowercase the first word
        for j, w in enumerate(words):
            if w.lower() in SYNONYMS:
                words[j] = SYNONYMS[w.lower()]
                break
        words[0] = words[0].lower()
        return " ".join(words)
    if rule == 4:
        # keep roughly the first half (brevity)
        return " ".join(words[: max(1, len(words) // 2)])
    # rule 5: every other word replaced by a synonym when one exists
    out = []
    for j, w in enumerate(words):
        if j % 2 == 1 and w.lower() in SYNONYMS:
            out.append(SYNONYMS[w.lower()])
        else:
            out.append(w)
    return " ".join(out)


CASES.append(
    {
        "name": "larger_corpus_50_lines",
        "hyps": [derive_hypothesis(i, r) for i, r in enumerate(LARGE_REFS)],
        "refs": list(LARGE_REFS),
    }
)


def score_case(case: dict) -> dict:
    hyps, refs = case["hyps"], case["refs"]
    assert len(hyps) == len(refs), case["name"]
    bleu = BLEU().corpus_score(hyps, [refs])
    chrf = CHRF().corpus_score(hyps, [refs])
    return {
        "name": case["name"],
        "hyps": hyps,
        "refs": refs,
        "bleu": bleu.score,
        "chrf": chrf.score,
        "bleu_counts": [int(c) for c in bleu.counts],
        "bleu_totals": [int(t) for t in bleu.totals],
        "bleu_precisions": [float(p) for p in bleu.precisions],
        "bleu_bp": float(bleu.bp),
        "sys_len": int(bleu.sys_len),
        "ref_len": int(bleu.ref_len),
    }


def signatures() -> dict:
    bleu, chrf = BLEU(), CHRF()
    bleu.corpus_score(["a"], [["a"]])
    chrf.corpus_score(["a"], [["a"]])
    return {
        "version": sacrebleu.__version__,
        "bleu": bleu.get_signature().format(),
        "chrf": chrf.get_signature().format(),
    }


def main() -> int:
    if sacrebleu.__version__ != PINNED_VERSION:
        print(
            f"expected sacrebleu=={PINNED_VERSION}, found {sacrebleu.__version__}",
            file=sys.stderr,
        )
        return 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    cases = [score_case(c) for c in CASES]
    with open(OUT_DIR / "cases.json", "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(OUT_DIR / "signatures.json", "w", encoding="utf-8") as f:
        json.dump(signatures(), f, ensure_ascii=False, indent=2)
        f.write("\n")
    for c in cases:
        print(f"{c['name']:<40} BLEU {c['bleu']:8.4f}  chrF {c['chrf']:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
