"""The HF adapter over a transformers 4.x release whose rot_pos_emb is planted to swap (row, col), as a bad release
would ship it. Used by tests/test_adapter_hf_releases.py::test_planted_bug_in_rot_pos_emb_is_caught, which runs
`vitspec verify` on it in that release's venv: rotary_position_ids must fail, window_index must pass."""

from vitspec.adapters import hf
from vitspec.adapters.hf_loading import modeling

Model = modeling.Qwen2_5_VisionTransformerPretrainedModel
released = Model.rot_pos_emb


def swapped(self, grid_thw):
    return released(self, grid_thw).flip(-1)


Model.rot_pos_emb = swapped
TARGET = hf.TARGET
