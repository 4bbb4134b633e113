#!/usr/bin/env bash
# Fetches NVIDIA's NVRTC runtime compiler (the nvidia-cuda-nvrtc-cu12 wheel from PyPI,
# sha256-pinned) into .cache/nvrtc and prints the folder holding libnvrtc.so.12.
#
# Why: CI has no GPU and no CUDA toolkit, but compiling our CUDA kernels to PTX needs
# only NVRTC, so every CI run checks the CUDA source (`tests/cuda.rs`).
# Idempotent; needs only bash and python3 (pip) with access to PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.cache/nvrtc"
VERSION=12.9.86
WHEEL_SHA=210cf05005a447e29214e9ce50851e83fc5f4358df8b453155d5e1918094dcb4
LIB="$DIR/nvidia/cuda_nvrtc/lib"
if [[ ! -f "$LIB/libnvrtc.so.12" ]]; then
    mkdir -p "$DIR"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2010_x86_64 -d "$TMP" "nvidia-cuda-nvrtc-cu12==$VERSION" >&2
    wheel="$(ls "$TMP"/*.whl)"
    got="$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$wheel")"
    if [[ "$got" != "$WHEEL_SHA" ]]; then
        echo "fetch-nvrtc: sha256 mismatch for $wheel: $got" >&2
        exit 1
    fi
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$DIR"
fi
echo "$LIB"
