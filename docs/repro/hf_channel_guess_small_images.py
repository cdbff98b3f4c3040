"""HF transformers 4.53 to 5.3: Qwen2VLImageProcessor reads an RGB image 1 or 3 pixels high as channels-first.

Needs only the port:  pip install transformers==4.57.6 pillow numpy   (any release from 4.53.0 to 5.3.0; 4.49 to
4.52 refuse sides below 28 first, see ports/hf.toml). Run:
    python hf_channel_guess_small_images.py

What HF does: the image processor turns each PIL image into an (H, W, 3) array and, unless the caller passes
input_data_format, guesses the channel axis (transformers.image_utils.infer_channel_dimension_format): the first
axis is taken for channels when its length is 1 or 3, even when the last axis is 3 too (it only warns "The channel
dimension is ambiguous"). A PIL image is always channels-last, but an image 1 pixel high is read as a 1-channel image
of 40 x 3 pixels, and normalizing it with the 3-value mean fails; one 3 pixels high is read as a 3-channel image
of 40 x 3 pixels: the grid comes out transposed, with no error. The same image with input_data_format="channels_last"
is processed right. transformers 5.4.0 fixed it for PIL images: Qwen2.5-VL's processor without torchvision is then
Qwen2VLImageProcessorPil, which takes PIL images as they are.

What the spec says (vitspec spec/SPEC.md, pixels: preprocess): media are uint8 (H, W, 3) images whatever their
size; an image's grid is (1, h/14, w/14) of its smart_resize'd (h, w).
"""

import numpy as np
import transformers
from PIL import Image

try:  # 5.4 on: the PIL backend, where this is fixed
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil as Processor,
        smart_resize,
    )
except ImportError:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor as Processor, smart_resize

print(f"transformers {transformers.__version__}, {Processor.__name__}")
processor = Processor()
bad = 0
for height, width in ((1, 40), (3, 40), (40, 3), (28, 40)):
    image = Image.fromarray(np.full((height, width, 3), 128, np.uint8))
    budget = processor.size  # {"shortest_edge": min_pixels, "longest_edge": max_pixels} in every release here
    h, w = smart_resize(height, width, 28, min_pixels=budget["shortest_edge"], max_pixels=budget["longest_edge"])
    expected = [1, h // 14, w // 14]
    try:
        got = processor(images=[image], return_tensors="np")["image_grid_thw"][0].tolist()
    except ValueError as e:
        got = f"ValueError: {e}"
    told = processor(images=[image], return_tensors="np", input_data_format="channels_last")["image_grid_thw"]
    ok = got == expected
    bad += not ok
    print(
        f"PIL image {height} x {width}: grid {got}, expected {expected} -> {'ok' if ok else 'WRONG'} "
        f"(with input_data_format='channels_last': {told[0].tolist()})"
    )
print("BUG REPRODUCED" if bad else "not reproduced: this release reads small PIL images right")
