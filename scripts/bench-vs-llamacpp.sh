#!/usr/bin/env bash
# Dense prefill and decode speed of powerinfer-rs and llama.cpp side by side, on one GGUF.
#
# Usage: scripts/bench-vs-llamacpp.sh LLAMA_BENCH [MODEL] [ROUNDS]
#   LLAMA_BENCH  path of a llama-bench binary (see BENCHMARKS.md for building one)
#   MODEL        GGUF file (default: the embedded SmolLM2-135M-Instruct Q4_1)
#   ROUNDS       alternating rounds per thread count (default 3)
#
# Each round runs our `bench decode --json` (128-token prompt, then 64 decode steps; and
# once more with `--prefill int8` for the opt-in int8 prefill) and `llama-bench -p 128
# -n 64` one after the other, at 1 and at 2 threads, so both see the same machine load; the table gives each side's median over the rounds and the ratio of
# the medians (ours / llama.cpp), plus the per-round ratios.
# Note: llama-bench's tg64 decodes from an empty context, ours after the 128-token prompt
# (attention over 128–192 positions), which favours llama.cpp slightly.
set -euo pipefail
LLAMA_BENCH=${1:?usage: bench-vs-llamacpp.sh LLAMA_BENCH [MODEL] [ROUNDS]}
cd "$(dirname "$0")/.."
MODEL=${2:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${3:-3}
THREADS=${THREADS:-1 2}
[ -x "$LLAMA_BENCH" ] || { echo "not executable: $LLAMA_BENCH" >&2; exit 1; }
scripts/fetch-assets.sh >/dev/null
cargo build --release --example bench -q
OURS=target/release/examples/bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    echo "round $round, $t thread(s)" >&2
    "$OURS" decode --model "$MODEL" --threads "$t" --dense-only --prompt-tokens 128 \
      --decode-tokens 64 --json | grep '"policy":"dense"' | sed "s/^/$t $round /" >> "$out/ours"
    "$OURS" decode --model "$MODEL" --threads "$t" --dense-only --prompt-tokens 128 \
      --decode-tokens 8 --prefill int8 --json | grep '"policy":"dense"' \
      | sed "s/^/$t $round /" >> "$out/ours_int8"
    "$LLAMA_BENCH" -m "$MODEL" -t "$t" -p 128 -n 64 -r 1 -o jsonl 2>/dev/null \
      | sed "s/^/$t $round /" >> "$out/llama"
  done
done
python3 - "$out/ours" "$out/llama" "$MODEL" "$out/ours_int8" <<'PY'
import json, statistics, sys
ours, llama = {}, {}
for line, line8 in zip(open(sys.argv[1]), open(sys.argv[4])):
    t, r, js = line.split(" ", 2)
    o, o8 = json.loads(js), json.loads(line8.split(" ", 2)[2])
    ours.setdefault(int(t), []).append((o["prefill_tok_s"], o["decode_tok_s"], o8["prefill_tok_s"]))
for line in open(sys.argv[2]):
    t, r, js = line.split(" ", 2)
    o = json.loads(js)
    kind = 0 if o["n_prompt"] > 0 else 1
    llama.setdefault(int(t), {}).setdefault(kind, []).append(o["avg_ts"])
print(f"model: {sys.argv[3]}")
print("| threads | test | ours tok/s (median) | llama.cpp tok/s (median) | ratio | per-round ratios |")
print("|---|---|---|---|---|---|")
for t in sorted(ours):
    for kind, name, lk in ((0, "prefill pp128 (exact, default)", 0), (2, "prefill pp128 (int8)", 0),
                           (1, "decode tg64", 1)):
        a = [o[kind] for o in ours[t]]
        b = llama[t][lk]
        rounds = " ".join(f"{x / y:.2f}" for x, y in zip(a, b))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {t} | {name} | {ma:.1f} | {mb:.1f} | **{ma / mb:.2f}×** | {rounds} |")
PY
