#!/usr/bin/env bash
# Install llama.cpp's Qwen2.5-VL vision encoder (through llama-cpp-python's mtmd bindings) and vitspec into a venv.
#
#   ports/llama_cpp.sh /work/venvs/llama_cpp
#
# llama-cpp-python has no CPU wheel on PyPI for this platform: pip builds the sdist (cmake >= 3.21, a C++17 compiler),
# ~17 min on 2 loaded cores. GGML_NATIVE=ON builds for this CPU; the result is not portable to other machines.
# torch is pinned to the CPU build (torch==2.13.0 resolves to +cpu here; an unpinned torch pulls a CUDA build).
set -euo pipefail
VENV=${1:?usage: ports/llama_cpp.sh VENV_PATH}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip wheel
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$VENV/bin/pip" install --no-cache-dir "llama-cpp-python==$VERSION"
"$VENV/bin/pip" install "torch==2.13.0" "gguf>=0.10"
"$VENV/bin/pip" install -e "$ROOT[test,gguf]"
"$VENV/bin/python" -c "import llama_cpp, llama_cpp.mtmd_cpp; print('llama-cpp-python', llama_cpp.__version__)"
