"""Restore one image with the Python API.

Usage: python examples/python_api.py CHECKPOINT INPUT.png OUTPUT.png
"""

import sys

import numpy as np
import torch
from PIL import Image

import algnet_cli

checkpoint, src, dst = sys.argv[1:4]
model = algnet_cli.load_model(checkpoint, device="cuda" if torch.cuda.is_available() else "cpu", tlc=True)
rgb = np.asarray(Image.open(src).convert("RGB"), dtype=np.float32) / 255.0
x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(next(model.parameters()).device)
y = algnet_cli.restore(model, x).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
Image.fromarray((y * 255.0 + 0.5).astype(np.uint8)).save(dst)
