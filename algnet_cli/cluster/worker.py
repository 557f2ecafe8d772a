"""The cluster's worker: an actor that loads the model once and deblurs files and frames with it.

Files are read and written by the worker itself, on storage every node shares, through the same
code as a single-machine run (so outputs are identical, and writes atomic). Frames of a video come
from the driver and go back to it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np

from ..batch.plan import Job, OutputOptions
from ..batch.record import FileResult


class DeblurWorker:
    """One model on one device. ``model``: the :class:`~algnet_cli.api.Deblurrer` arguments, resolved on
    this node (its Hub cache, its offline setting); ``threads``: torch threads on a CPU worker."""

    def __init__(self, model: dict, threads: int | None = None):
        import ray
        import torch

        from .. import __version__
        from ..api import Deblurrer
        from ..errors import AlgnetError

        model = dict(model)
        pinned, driver_version = model.pop("sha256", None), model.pop("driver_version", None)
        if threads:
            torch.set_num_threads(threads)
        ctx = ray.get_runtime_context()
        self.place = {
            "node": ctx.get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "worker": ctx.get_actor_id(),
        }
        self.deblurrer: Any = None  # a Deblurrer once the model is in
        self.load_error: Exception | None = None
        host = self.place["host"]
        try:
            if driver_version is not None and driver_version != __version__:
                raise AlgnetError(
                    f"worker on {host} runs algnet-cli {__version__}, the driver {driver_version}: install the "
                    "same version on every node"
                )
            self.deblurrer = Deblurrer(**model)
            found = self.deblurrer.descriptor.sha256
            if pinned is not None and found != pinned:
                raise AlgnetError(
                    f"worker on {host}: the model {model.get('model')} there is not the driver's (sha256 "
                    f"{(found or 'none')[:12]}... here, {pinned[:12]}... on the driver); put it on storage every "
                    "node shares at the same path, or register it under a name"
                )
        except Exception as e:  # noqa: BLE001 - kept, and raised by where(): Ray keeps a task's error whole,
            self.deblurrer, self.load_error = None, e  # an actor's start-up error only as text

    def where(self) -> dict:
        """Where this worker runs: node id, host, process id, actor id (and it is ready: the model is in).
        Raises the error that loading the model met."""
        if self.load_error is not None:
            raise self.load_error
        return dict(self.place, device=str(self.deblurrer.runner.device))

    def sees(self, paths: list[str]) -> list[bool]:
        """Whether each path exists as this worker's node sees it (the driver's check of shared storage)."""
        return [os.path.exists(p) for p in paths]

    def describe_run(self) -> dict:
        return self.deblurrer.describe_run()

    def image(self, job: Job, options: OutputOptions) -> FileResult:
        """One image file, exactly as a single-machine run does it (the driver has decided to run it)."""
        from ..batch.stills import run_images

        result = run_images([job], self.deblurrer, options)[0]
        result.place = self.where()
        return result

    def segment(self, src: str, segment, dst: str, options, joined_into: str | None = None) -> list[int]:
        """One keyframe segment of a video, deblurred and encoded into ``dst`` (atomic), for a join
        into ``joined_into``; its timestamps."""
        from ..video.segments import encode_segment

        return encode_segment(src, segment, dst, self.deblurrer, options, joined_into)

    def frames(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size video frames, deblurred in batches as this worker's memory allows."""
        h, w = frames[0].shape[:2]
        step = self.deblurrer.frames_per_batch(h, w)
        out: list[np.ndarray] = []
        for i in range(0, len(frames), step):
            out += self.deblurrer.deblur_many(frames[i : i + step])
        return out

    def frames_per_batch(self, height: int, width: int) -> int:
        return self.deblurrer.frames_per_batch(height, width)
