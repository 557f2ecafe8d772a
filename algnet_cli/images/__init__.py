"""Reading and writing images: identification by content (identify), headers and the decoding
limit (probe), decoding into pixels and a description (read, tiff), encoding as described (write).

Arrays are H x W (grey) or H x W x C with C in 2..4, RGB(A) order, uint8, uint16 or float32;
outputs are written atomically, as their description says, with notes on whatever they cannot hold.
"""

from .describe import ImageDescription, channel_mode, describe_array
from .identify import identify
from .probe import (
    BYTES_PER_DECODED_PIXEL,
    IMAGE_SUFFIXES,
    MULTI_FRAME,
    UNREADABLE_SUFFIXES,
    ImageHeader,
    check_header,
    default_max_pixels,
    is_image_path,
    probe_image,
)
from .read import Opened, apply_orientation, data_range, open_image, read_image, read_metadata
from .write import EIGHT_BIT_ONLY, FORMATS, NO_ALPHA, WRITABLE, format_of_suffix, save_image, to_8bit, write_image

__all__ = [
    "BYTES_PER_DECODED_PIXEL",
    "EIGHT_BIT_ONLY",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "ImageDescription",
    "ImageHeader",
    "MULTI_FRAME",
    "NO_ALPHA",
    "Opened",
    "UNREADABLE_SUFFIXES",
    "WRITABLE",
    "apply_orientation",
    "channel_mode",
    "check_header",
    "data_range",
    "default_max_pixels",
    "describe_array",
    "format_of_suffix",
    "identify",
    "is_image_path",
    "open_image",
    "probe_image",
    "read_image",
    "read_metadata",
    "save_image",
    "to_8bit",
    "write_image",
]
