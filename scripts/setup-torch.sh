#!/usr/bin/env bash
# Creates the Python environment with PyTorch 2.9.0 (the version burn-tch 0.22 expects) that
# `profundo bench models` runs its PyTorch rows in: ~/.cache/profundo/torch-venv, where the
# benchmark looks for it (or point PROFUNDO_PYTHON at another python with torch), and whose
# LibTorch the `tch` feature links (scripts/with-torch.sh). PROFUNDO_TORCH_VENV moves it.
# PyPI has no CPU-only torch wheel: about 3.9 GB to download, 6.8 GB on disk.
set -euo pipefail
venv="${PROFUNDO_TORCH_VENV:-$HOME/.cache/profundo/torch-venv}"
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch==2.9.0 numpy
fi
"$venv/bin/python" -c 'import torch; print("PyTorch", torch.__version__)'
echo "python: $venv/bin/python"
