"""Reading and writing images: headers and the decoding limit (probe), decoding (read), encoding (write).

Arrays are H x W (grey) or H x W x C with C in 1..4, RGB(A) order, dtype uint8 or uint16 (float
TIFFs come back as float32); outputs are written atomically with their metadata.
"""

from .probe import (
    BYTES_PER_DECODED_PIXEL,
    IMAGE_SUFFIXES,
    MULTI_FRAME,
    ImageHeader,
    check_header,
    default_max_pixels,
    is_image_path,
    probe_image,
)
from .read import Frames, apply_orientation, data_range, read_frames, read_image, read_metadata, suffix_is_jpeg
from .write import EIGHT_BIT_ONLY, FORMATS, NO_ALPHA, WRITABLE, to_8bit, write_frames, write_image

__all__ = [
    "BYTES_PER_DECODED_PIXEL",
    "EIGHT_BIT_ONLY",
    "FORMATS",
    "Frames",
    "IMAGE_SUFFIXES",
    "ImageHeader",
    "MULTI_FRAME",
    "NO_ALPHA",
    "WRITABLE",
    "apply_orientation",
    "check_header",
    "data_range",
    "default_max_pixels",
    "is_image_path",
    "probe_image",
    "read_frames",
    "read_image",
    "read_metadata",
    "suffix_is_jpeg",
    "to_8bit",
    "write_frames",
    "write_image",
]
