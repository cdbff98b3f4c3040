#!/usr/bin/env bash
# llama.cpp's Qwen2.5-VL vision encoder (llama-cpp-python's mtmd bindings) and vitspec in a venv.
#
#   ports/llama_cpp.sh VENV [VERSION]      (`vitspec ports` runs it so, from ports/llama_cpp.toml's `script`)
#
# Makes the venv at VENV if it has none (python3 -m venv), then installs llama-cpp-python==VERSION (default 0.3.36),
# torch 2.13.0 (the CPU build here; an unpinned torch pulls a multi-GB CUDA build), gguf, and vitspec from this
# checkout (editable, with its test extra) unless the venv already imports it.
#
# llama-cpp-python has no CPU wheel on PyPI for this platform: pip builds the sdist (cmake >= 3.21, a C++17
# compiler), ~17 min on 2 loaded cores. GGML_NATIVE=ON builds for this CPU; the result is not portable to another
# machine. No third-party file is patched.
set -euo pipefail
VENV=${1:?usage: ports/llama_cpp.sh VENV [VERSION]}
VERSION=${2:-${PORT_VERSION:-0.3.36}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip wheel
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_CUDA=OFF}" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$PY" -m pip install --no-cache-dir "llama-cpp-python==$VERSION"
"$PY" -m pip install "torch==2.13.0" "gguf>=0.10"
"$PY" -c "import vitspec.tests.plugin" 2>/dev/null || "$PY" -m pip install -e "$ROOT[test]"
"$PY" -c "import llama_cpp, llama_cpp.mtmd_cpp; print('llama-cpp-python', llama_cpp.__version__)"
