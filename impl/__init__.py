"""Optimized torch implementation of the Qwen2.5-VL vision front-end (CPU and CUDA): one module per stage.

``impl.TARGET`` exposes every stage of spec/protocol.py as a method (float32 on the CPU);
``impl.TARGET.with_options(device="cuda", dtype="bfloat16")`` gives a configured copy.
"""

from vitspec.impl.target import TorchTarget

TARGET = TorchTarget(device="cpu", dtype="float32")
