"""Video in, video (or frames) out, through PyAV's bundled FFmpeg.

``decode``: the source file, its streams, rotation and timestamps. ``encode``: codec and
pixel-format choice, the copy/re-encode policy for other streams, the sink. ``process``: a video
through a restorer; ``sequence``: still frames into a video.
"""

from ..errors import VideoError
from .containers import EncodeOptions, check_encode_options, choose_pix_fmt, encoder_name
from .decode import OUTPUT_CONTAINERS, VIDEO_SUFFIXES, VideoReport, is_video_path
from .encode import describe_backend, partial_path
from .probing import probe, probe_header
from .process import FrameFunction, Restorer, process_video
from .sequence import process_sequence

__all__ = [
    "EncodeOptions",
    "FrameFunction",
    "OUTPUT_CONTAINERS",
    "Restorer",
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoReport",
    "check_encode_options",
    "choose_pix_fmt",
    "describe_backend",
    "encoder_name",
    "is_video_path",
    "partial_path",
    "probe",
    "probe_header",
    "process_sequence",
    "process_video",
]
