#!/usr/bin/env bash
# build_llamacpp.sh: builds the peer we compare with — llama.cpp's own
# llama-bench, llama-cli and llama-server — from the llama.cpp source tree that
# the PyPI sdist of llama-cpp-python carries (pinned by SHA-256), into
# .deps/llama.cpp/build/bin. Idempotent; slow the first time (~15 min on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPS="$ROOT/.deps"
VER=0.3.36
SUM=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SDIST="$DEPS/cache/llama_cpp_python-$VER.tar.gz"
SRC="$DEPS/llama.cpp"
BIN="$SRC/build/bin"
JOBS="${JOBS:-$(nproc)}"
PY="${PY:-python3}"

if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-server" ] && [ -f "$SRC/.version" ] &&
   [ "$(cat "$SRC/.version")" = "$VER" ]; then
  exit 0
fi
mkdir -p "$DEPS/cache"
if [ ! -f "$SDIST" ] || [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" != "$SUM" ]; then
  rm -f "$SDIST"
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$DEPS/cache"
  [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" = "$SUM" ] || { echo "llama-cpp-python sdist: SHA-256 mismatch" >&2; exit 1; }
fi
rm -rf "$SRC"
mkdir -p "$SRC"
tar -xzf "$SDIST" -C "$SRC" --strip-components=3 "llama_cpp_python-$VER/vendor/llama.cpp"
cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$SRC/build" -j "$JOBS" --target llama-bench llama-cli llama-server >"$SRC/build.log" 2>&1 ||
  { tail -30 "$SRC/build.log"; exit 1; }
echo "$VER" >"$SRC/.version"
echo "llama.cpp tools in $BIN"
