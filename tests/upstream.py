"""Upstream oracles (HF transformers, qwen-vl-utils, Pillow), loaded so that a missing one is reported loudly.

Every loader calls pytest.skip with a reason starting with MISSING, so a run that lacks an oracle
shows it in the skip summary instead of passing silently.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from pathlib import Path

import pytest

MISSING = "UPSTREAM ORACLE MISSING:"
HF_PIL_MODULE = "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl"
QVU_NEEDED = (
    "MAX_RATIO",
    "IMAGE_MIN_TOKEN_NUM",
    "IMAGE_MAX_TOKEN_NUM",
    "round_by_factor",
    "ceil_by_factor",
    "floor_by_factor",
    "smart_resize",
    "to_rgb",
)


def require(module: str):
    """Import an upstream module or skip the test with a reason starting with MISSING."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{MISSING} {module} ({e})")


def hf_smart_resize():
    """transformers' smart_resize (the function the PIL image processor calls)."""
    return require(HF_PIL_MODULE).smart_resize


def hf_pil_processor(**kwargs):
    """transformers' Qwen2VLImageProcessorPil (runs without torchvision)."""
    return require(HF_PIL_MODULE).Qwen2VLImageProcessorPil(**kwargs)


def pillow_image():
    """PIL.Image."""
    return require("PIL.Image")


@functools.lru_cache(maxsize=1)
def _qvu_namespace() -> dict:
    spec = importlib.util.find_spec("qwen_vl_utils")  # locates the package without executing it
    source = Path(spec.submodule_search_locations[0]) / "vision_process.py" if spec else None
    if source is None or not source.is_file():
        return {}
    tree = ast.parse(source.read_text(), filename=str(source))
    keep = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in QVU_NEEDED)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in QVU_NEEDED for t in node.targets))
    ]
    namespace: dict = {}
    exec("import math\nfrom typing import Optional, Tuple\nfrom PIL import Image", namespace)
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(source), "exec"), namespace)
    return namespace


def qvu(name: str):
    """A pure function of qwen_vl_utils/vision_process.py (smart_resize, to_rgb, ...).

    That module imports torchvision at import time, and torchvision does not import beside this
    torch build; so the function definitions and constants it needs are parsed from the installed
    source file with ast and compiled on their own: the upstream code runs unchanged, torchvision
    is never imported.
    """
    if name not in QVU_NEEDED:
        raise ValueError(f"name must be one of {list(QVU_NEEDED)}, got {name!r}")
    namespace = _qvu_namespace()
    if name not in namespace:
        pytest.skip(f"{MISSING} qwen_vl_utils.vision_process.{name} (package or function not found)")
    return namespace[name]
