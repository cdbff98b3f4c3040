"""The compiled CPU kernels of impl (impl/resize_native.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("vitspec.impl._resize_native", ["impl/resize_native.c"], extra_compile_args=["-O3"])])
