"""Run in a transformers release's venv by tests/test_adapter_hf_releases.py: the HF adapter's class, stages and
inline stages there, as one JSON line."""

import json

import transformers

from vitspec.adapters import hf
from vitspec.spec.protocol import capabilities, provided_stages

t = hf.TARGET()
print(
    json.dumps(
        {
            "version": transformers.__version__,
            "class": type(t).__name__,
            "stages": provided_stages(t),
            "inline": sorted(dict(capabilities(t).inline)),
        }
    )
)
