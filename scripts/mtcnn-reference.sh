#!/usr/bin/env bash
# Regenerates crates/faces/tests/fixtures/mtcnn-reference.json with the reference MTCNN
# (facenet-pytorch 2.6.0) in the PyTorch environment of scripts/setup-torch.sh, to which it
# adds facenet-pytorch (without its old torch pin), torchvision 0.24.0 (the release for
# PyTorch 2.9.0; its NMS), Pillow, requests and tqdm (imported by facenet-pytorch).
# The fixture is committed: the tests that read it need no Python.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-torch.sh >/dev/null
venv="${PROFUNDO_TORCH_VENV:-$HOME/.cache/profundo/torch-venv}"
if ! "$venv/bin/python" -c 'import facenet_pytorch, torchvision, PIL' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --no-deps facenet-pytorch==2.6.0 torchvision==0.24.0
    "$venv/bin/pip" install --quiet pillow requests tqdm
fi
data="${PROFUNDO_DATA:-$HOME/.local/share/profundo}"
"$venv/bin/python" scripts/mtcnn_reference.py . "$data" crates/faces/tests/fixtures/mtcnn-reference.json
