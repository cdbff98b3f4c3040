"""The float64 NumPy reference of the Qwen2.5-VL vision front-end: one module per pipeline stage.

``reference.TARGET`` exposes every stage of spec/protocol.py as a method.
"""

from vitspec.reference.target import ReferenceTarget

TARGET = ReferenceTarget()
