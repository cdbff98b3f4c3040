"""A planted tower for tests/test_determinism.py's negative control: the reference's output plus 1e-12 times the
process id, so it is the same call after call and differs between processes, as a result that depends on
process-wide state (a hash seed, an allocator's addresses, a thread pool's size) would."""

from __future__ import annotations

import os

from vitspec.reference import TARGET as REFERENCE


class PerProcessTower:
    name = "per-process tower (planted)"
    device, dtype = "cpu", "float64"

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        return REFERENCE.vision_tower(pixel_values, grid_thw, weights, config) + 1e-12 * os.getpid()


TARGET = PerProcessTower()
