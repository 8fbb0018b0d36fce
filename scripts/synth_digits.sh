#!/usr/bin/env bash
# Synthesises spoken digits 0-9 with espeak-ng in many synthetic voices, for training only
# (never for evaluation): `{digit}_{voice}_{take}.wav`, 8 kHz mono 16-bit, silence trimmed,
# the same naming as FSDD. Each voice is an espeak-ng accent with a voice variant and its own
# base pitch and rate; each take jitters pitch and rate around them. Deterministic for one
# espeak-ng/sox version (fixed RANDOM seed, no dither).
#
#   scripts/synth_digits.sh OUT_DIR [VOICES] [TAKES]
#
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox).
set -euo pipefail
out=${1:?usage: synth_digits.sh OUT_DIR [VOICES] [TAKES]}
voices=${2:-40}
takes=${3:-5}
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "synth_digits.sh: $tool not found (apt-get install espeak-ng sox)" >&2; exit 1; }
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
words=(zero one two three four five six seven eight nine)
accents=(en-us en-gb en-gb-scotland en-gb-x-gbclan en-gb-x-rp en-gb-x-gbcwmd en-029 en-us-nyc)
variants=(m1 f1 m2 f2 m3 f3 m4 f4 m5 f5 m6 m7 Alex Annie Andy Linda Denis Steph Ed anika
    Edward Gene John Mike Paul Rob Zac grandma grandpa klatt2 klatt3 Michael Storm travis
    victor shelby Quincy Diogo Hugo Lee)
RANDOM=7
for ((v = 0; v < voices; v++)); do
    accent=${accents[$((v % ${#accents[@]}))]}
    variant=${variants[$((v % ${#variants[@]}))]}
    name=$(printf 'tts%02d' "$v")
    base_rate=$((120 + RANDOM % 60))
    base_pitch=$((25 + RANDOM % 50))
    echo "$name: $accent+$variant, rate $base_rate wpm, pitch $base_pitch"
    for ((d = 0; d < 10; d++)); do
        for ((t = 0; t < takes; t++)); do
            rate=$((base_rate - 15 + RANDOM % 31))
            pitch=$((base_pitch - 10 + RANDOM % 21))
            espeak-ng -v "$accent+$variant" -s "$rate" -p "$pitch" -w "$tmp/raw.wav" "${words[$d]}"
            sox -D -V1 "$tmp/raw.wav" -r 8000 -b 16 -c 1 "$out/${d}_${name}_${t}.wav" vol 0.7 \
                silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
        done
    done
done
