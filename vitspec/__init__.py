"""vitspec: the executable specification and correctness gate for the Qwen2.5-VL vision front-end.

Layers, bottom to top (docs/ARCHITECTURE.md): ``vitspec.spec`` (data, rules, protocol) <- ``vitspec.reference``
(float64 NumPy) <- ``vitspec.impl`` (optimized torch) <- the tool (this package's own modules: cli, verify,
mutants, adapters, bench, plot, specmd) and the suite (``vitspec.tests``). Importing this package imports
nothing else.
"""

__version__ = "0.2.0"
