"""A port that, like llama.cpp (one n_wa_pattern in its GGUF), runs only periodic full-attention layouts: its
vision_tower refuses any other with ValueError and computes the rest with vitspec's torch impl. It declares
fullatt_layout from $VITSPEC_TEST_LAYOUT ("periodic" unless set). Used by tests/test_fullatt_layout.py, which runs
`vitspec verify` on it in a child: declared "periodic", its tower checks must pass."""

from __future__ import annotations

import os

from vitspec.impl import TARGET as IMPL
from vitspec.spec.configs import fullatt_period


class PeriodicPort:
    name = "periodic-layout port"
    device, dtype = "cpu", "float32"  # impl's default: float32 on the CPU
    capabilities = {"fullatt_layout": os.environ.get("VITSPEC_TEST_LAYOUT", "periodic")}

    def vision_tower(self, pixel_values, grid_thw, weights, config):
        if fullatt_period(config["fullatt_block_indexes"], int(config["depth"])) is None:
            raise ValueError(f"only periodic fullatt_block_indexes run here, got {config['fullatt_block_indexes']}")
        return IMPL.vision_tower(pixel_values, grid_thw, weights, config)


TARGET = PeriodicPort()
