#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer coverage instrumentation on the *stable*
# toolchain (rustc's sancov pass via -C passes / -C llvm-args: no nightly, no cargo-fuzz),
# writes the seed corpus, and runs one target for a time budget:
#
#   fuzz/run.sh <gguf|tokenizer|plan|predictor> [seconds=60] [extra libFuzzer flags]
#
# Crashes land in fuzz/artifacts/<target>/; libFuzzer's final stats (executions, speed)
# are printed at the end. Inputs slower than 2 s count as crashes (-timeout=2), so the
# "bounded time" properties are checked too.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh <target> [seconds]}
secs=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
# The seed corpus, from a plain (uninstrumented) build.
cargo run --quiet --release --bin seeds --target-dir target/plain
export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -C debug-assertions -C overflow-checks"
# With an explicit --target, RUSTFLAGS reach only the targets, not build scripts.
triple=$(rustc -vV | sed -n "s/^host: //p")
cargo build --release --target "$triple" --bin gguf --bin tokenizer --bin plan --bin predictor
bin="target/$triple/release"
mkdir -p "artifacts/$target" "corpus/$target"
bash ../scripts/fetch-assets.sh >/dev/null
exec "$bin/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$secs" -timeout=2 -rss_limit_mb=4096 -max_len=262144 -print_final_stats=1 "$@"
