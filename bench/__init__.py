"""Benchmarks that compare impl with HF transformers side by side in one run (never timed tests)."""
