#!/usr/bin/env bash
# Runs a command (a cargo build or test with `--features tch`) inside the PyTorch 2.9.0
# environment that scripts/setup-torch.sh makes, so torch-sys links against its LibTorch
# (LIBTORCH_USE_PYTORCH=1). Built binaries carry an rpath to that LibTorch and start
# without this script; LD_LIBRARY_PATH is set here for test binaries of the library crates.
#   scripts/with-torch.sh cargo build --release --features tch
set -euo pipefail
venv="${PROFUNDO_TORCH_VENV:-$HOME/.cache/profundo/torch-venv}"
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "error: no PyTorch in $venv; run scripts/setup-torch.sh first" >&2
    exit 1
fi
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
torch_lib="$("$venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
