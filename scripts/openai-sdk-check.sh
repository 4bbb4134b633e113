#!/usr/bin/env bash
# The server against a client no one here wrote: the official `openai` Python SDK (pinned),
# in a venv of its own, asserting on chat, streaming chat, completions with logprobs and
# typed errors (scripts/openai_sdk_check.py). Run by .ci/run after `cargo test`, whose
# build of the server binary (test profile, optimised) it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
OPENAI_VERSION=3.57.0
venv=.cache/venv-openai
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null \
    || "$venv/bin/pip" install --quiet "openai==$OPENAI_VERSION"
cargo test --quiet -p powerinfer-server --no-run
bin=target/debug/powerinfer-server
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$bin" --port "$port" --ctx 512 --parallel 2 --api-key sdk-test-key >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
    grep -q "serving" "$log" && break
    kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
done
"$venv/bin/python" scripts/openai_sdk_check.py "http://127.0.0.1:$port/v1" sdk-test-key
