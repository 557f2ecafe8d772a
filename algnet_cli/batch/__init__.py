"""Files in, files out: discovery, planning (names, collisions), skip-existing, running images and
videos through one pipeline, and the run record. The library plans and runs; the command renders."""

from ..errors import describe_error
from .discover import discover
from .dryrun import describe_plan
from .plan import Job, OutputOptions, Plan, Request, VideoOptions, check_writable, clean_stale_temps, plan
from .record import RUN_RECORD, FileResult, Outcome, write_run_record
from .run import Events, execute, score_outputs
from .stills import Decoded, load_image, run_images, save_image

__all__ = [
    "RUN_RECORD",
    "Decoded",
    "Events",
    "FileResult",
    "Job",
    "Outcome",
    "OutputOptions",
    "Plan",
    "Request",
    "VideoOptions",
    "check_writable",
    "clean_stale_temps",
    "describe_error",
    "describe_plan",
    "discover",
    "execute",
    "load_image",
    "plan",
    "run_images",
    "save_image",
    "score_outputs",
    "write_run_record",
]
