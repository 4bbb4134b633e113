#!/usr/bin/env bash
# The checks to run when a GPU machine is lent (see the `device` tool): prints the GPU,
# builds with `--features cuda`, runs the CUDA tests (PTX compile, and every CUDA op
# against the CPU backend for F32/F16/Q8_0/Q4_0/Q4_1 and each activation) and the hybrid
# executor's tests. Needs no network and no model files (the tests use tests/data).
# Budget: under 8 minutes on the device machine (most of it the release build).
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
