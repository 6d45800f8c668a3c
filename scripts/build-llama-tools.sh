#!/usr/bin/env bash
# llama.cpp's own `llama-bench`, `llama-perplexity` and `llama-batched-bench`, built once from the llama.cpp source
# vendored in the llama-cpp-python sdist that `llamacpp:` runs (the same kernels, the same
# version), for bench/bench_llamacpp.py's side-by-side reference. Not part of the test setup:
# the benchmark calls this. Cached under ~/.cache/tunegate/llama-tools/<version> (CI: cache that
# folder); prints that folder. CPU build, portable (-DGGML_NATIVE=OFF), like the cached wheel.
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${TUNEGATE_LLAMA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tunegate/llama-tools}
OUT="$CACHE/$VERSION"
TOOLS="llama-bench llama-perplexity llama-batched-bench"
missing=0
for t in $TOOLS; do [ -x "$OUT/$t" ] || missing=1; done
if [ "$missing" = 0 ]; then
  echo "$OUT"
  exit 0
fi
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "building $TOOLS from llama-cpp-python $VERSION's llama.cpp (once)" >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$WORK" "llama-cpp-python==$VERSION" 2> >(grep -v "is ignored: it is neither" >&2)
tar xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
# shellcheck disable=SC2086
cmake --build "$WORK/build" --target $TOOLS -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >&2
mkdir -p "$OUT"
for t in $TOOLS; do cp "$WORK/build/bin/$t" "$OUT/"; done
echo "$OUT"
