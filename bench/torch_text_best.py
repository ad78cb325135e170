#!/usr/bin/env python3
"""PyTorch's fastest float32 run of ../shared/bench/torch_text.py on a GPU, for the GPU
engine's side-by-side figure on a continuous text: the same script with TF32 matrix
products and its forward + loss compiled by torch.compile. A measurement tool, never a
dependency of the project.

  python3 bench/torch_text_best.py PATH/torch_text.py --device cuda [torch_text.py's arguments]

Give it --warmup of 20 or more: the first steps compile.
"""
import os
import runpy
import sys

import torch

script = os.path.abspath(sys.argv.pop(1))
sys.path.insert(0, os.path.dirname(script))
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True

import torch_microgpt  # noqa: E402  (beside the script; torch_text.py imports make_forward from it)

plain_make_forward = torch_microgpt.make_forward


def compiled_make_forward(args, P, use_sdpa):
    forward, loss_fn = plain_make_forward(args, P, use_sdpa)
    return forward, torch.compile(loss_fn)


torch_microgpt.make_forward = compiled_make_forward
runpy.run_path(script, run_name="__main__")
