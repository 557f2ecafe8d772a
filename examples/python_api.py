"""Deblur files with the Python API, as `algnet deblur` writes them (format, bit depth, alpha, every
page or frame, metadata and colour profile kept), then deblur an array you already hold.

Usage: python examples/python_api.py INPUT OUTPUT [MODEL]

MODEL is a registry name, an hf:// reference or a checkpoint file (default: the embedded model).
"""

import sys

import numpy as np

import algnet_cli

src, dst = sys.argv[1:3]
model = sys.argv[3] if len(sys.argv) > 3 else "default"

deblurrer = algnet_cli.Deblurrer(model)  # loads once: reuse it for every file
for note in deblurrer.deblur_file(src, dst):  # what changed on the way, if anything (e.g. a format limit)
    print(f"note: {note}")
print(f"{src} -> {dst} ({deblurrer.descriptor.source}, scan {deblurrer.descriptor.scan_backend})")

# arrays: uint8, uint16 or float in [0, 1], H x W or H x W x C; the same dtype and shape come back
noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
restored = deblurrer.deblur(noisy)
assert restored.dtype == noisy.dtype and restored.shape == noisy.shape
