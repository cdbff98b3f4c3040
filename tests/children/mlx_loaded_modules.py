"""Run as a script by tests/test_adapter_mlx_vlm.py::test_adapter_loads_the_vision_module_only, in a fresh
interpreter so that sys.modules holds only what loading the adapter imported: builds both mlx-vlm targets and
prints, separated by '|', their two names, the __file__ of the mlx_vlm package that was imported (None: a stub
parent package, not mlx-vlm's own __init__.py) and the sorted mlx_vlm modules loaded."""

import sys

from vitspec.adapters.mlx_vlm import QWEN2_VL, TARGET

names = TARGET().name, QWEN2_VL().name  # building a target loads the port's modules
loaded = sorted(m for m in sys.modules if m.startswith("mlx_vlm"))
print(*names, getattr(sys.modules["mlx_vlm"], "__file__", None), loaded, sep=" | ")
