"""Targets for tests/test_helper_stages.py: some of impl's stages, without the helper stages their checks build
inputs with (as a real port computes num_image_tokens, cu_seqlens or the rotary angles inline), and one with a
planted bug in window_index.

    vitspec verify --target helper_stage_target:TARGET   (with tests/children on PYTHONPATH)
"""

from __future__ import annotations

from vitspec import impl

IMPL = impl.TARGET  # float32 on the CPU, rotary angles


class Partial:
    """impl's methods for `stages` only; window_size_bug: window_index tiles windows of that many pixels."""

    dtype = IMPL.dtype
    device = IMPL.device
    capabilities = {"validates_inputs": True, "rotary": "angles"}

    def __init__(self, name: str, stages: tuple[str, ...], window_size_bug: int | None = None):
        self.name = name
        self._stages = set(stages)
        self._window_size_bug = window_size_bug

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._stages:
            raise AttributeError(name)
        if name == "window_index" and self._window_size_bug is not None:
            bug = self._window_size_bug

            def window_index(grid_thw, window_size=112, patch_size=14, merge_size=2):
                return IMPL.window_index(grid_thw, bug, patch_size, merge_size)

            return window_index
        return getattr(IMPL, name)


# vision_tower without num_image_tokens, window_index without cu_seqlens, apply_rotary without rotary_angles
TARGET = Partial(
    "helper-stage-toy", ("smart_resize", "rotary_position_ids", "window_index", "apply_rotary", "vision_tower")
)
# the same, with windows of 2 x 2 cells (56 px) instead of 4 x 4 (112 px): a bug in window_index
WINDOW_BUG = Partial("helper-stage-toy-window-bug", ("window_index",), window_size_bug=56)
# a helper stage alone: the checks that use it as a helper have none of their stages under check
HELPER_ONLY = Partial("helper-stage-toy-helper-only", ("cu_seqlens",))
