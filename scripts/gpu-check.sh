#!/usr/bin/env bash
# The checks to run when a GPU machine is lent (see the `device` tool): prints the GPU,
# builds with `--features cuda`, runs the CUDA tests (PTX compile, and every CUDA op
# against the CPU backend for F32/F16/Q8_0/Q4_0/Q4_1 and each activation) and the hybrid
# executor's tests, then writes the 7B-shaped synthetic model there (the working tree
# cannot carry it) and times decode split between the host and the GPU.
# Needs no network and no model files. Budget: under 8 minutes on the device machine.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# NVRTC: the toolkit's if there is one, else the pip wheel's (needs PyPI; absent
# offline, the PTX test then reports that it skipped).
if ! ldconfig -p | grep -q libnvrtc; then
    lib=$(bash scripts/fetch-nvrtc.sh 2>/dev/null || true)
    [[ -n "$lib" ]] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
time cargo test --release -p powerinfer-core --features cuda --test cuda -- --nocapture
time cargo test --release -p powerinfer-core --features cuda --test hybrid
cargo build --release --features cuda --example synth --example bench
# The sparse FFN op alone: weight GB/s at 100/50/10% density on one 7B-shaped layer
# (compare with the H200's ~4.8 TB/s HBM).
./target/release/examples/bench device --device cuda --reps 50
model=${TMPDIR:-/tmp}/synthetic-relu-llama-7b.q4_0.gguf
time ./target/release/examples/synth --out "$model"
# Synthetic weights, speed only.
time ./target/release/examples/bench synthetic --model "$model" --device cuda \
    --threads 16 --host-threads 8 --densities 0.1 --budgets 2GiB,4GiB --decode-tokens 16
