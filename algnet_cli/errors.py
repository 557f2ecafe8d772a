"""The exception tree of algnet-cli (standard library only).

Every error a user can cause derives from :class:`AlgnetError`. Where a stdlib type
fits, the error also inherits it, so callers may catch either.
"""

from __future__ import annotations


class AlgnetError(Exception):
    """Base class of every error raised on purpose by algnet-cli."""


class CheckpointError(AlgnetError, ValueError):
    """A checkpoint could not be read or does not describe an ALGNet."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path does not exist."""


class StateDictMismatchError(CheckpointError):
    """A strict load found missing, unexpected or mis-shaped tensors."""

    def __init__(self, missing: list[str], unexpected: list[str], mismatched: list[str], source: str = ""):
        self.source = source
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                parts.append(f"{len(keys)} {label} ({shown})")
        where = f"{source}: " if source else ""
        super().__init__(where + "checkpoint does not match the ALGNet layout: " + "; ".join(parts))

    def __reduce__(self):
        return type(self), (self.missing, self.unexpected, self.mismatched, self.source)


class ScanBackendError(AlgnetError, RuntimeError):
    """A selective-scan backend was asked for but cannot run here."""


class UsageError(AlgnetError, ValueError):
    """Options or arguments that cannot work together."""


class ImageReadError(AlgnetError, ValueError):
    """An input file is not a readable image (empty, truncated, not an image)."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # survives pickling (a cluster worker's error reaches the driver whole)
        return type(self), (self.path, self.reason)


class ImageWriteError(AlgnetError, OSError):
    """An output image could not be written."""


class PairingError(AlgnetError, ValueError):
    """Predictions and ground truths cannot be paired or compared."""


class ModelNotFoundError(AlgnetError, FileNotFoundError):
    """A model name, Hub reference or path that cannot be found (or not offline)."""


class DownloadError(AlgnetError, OSError):
    """A download failed: network, timeout, server error."""


class IntegrityError(AlgnetError, ValueError):
    """A downloaded file's sha256 does not match the expected one."""


class NonFiniteOutputError(AlgnetError, ArithmeticError):
    """The model produced NaN or Inf, even in fp32 (a damaged model, or input it cannot handle)."""


class VideoError(AlgnetError):
    """A video that cannot be opened, has no video stream, or cannot be written as asked."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # survives pickling (a cluster worker's error reaches the driver whole)
        return type(self), (self.path, self.reason)


class TrainingDiverged(AlgnetError, ArithmeticError):
    """The loss became NaN or Inf: training stopped before the update, the weights kept finite."""

    def __init__(self, step: int, loss: float, lr: float, detail: str = ""):
        self.step, self.loss, self.lr, self.detail = step, loss, lr, detail
        super().__init__(
            detail
            or f"the loss became {loss} at iteration {step} (learning rate {lr:.3g}); training stopped, last.pt "
            "holds the last finite checkpoint; lower --lr and run again"
        )

    def __reduce__(self):
        return type(self), (self.step, self.loss, self.lr, self.detail)


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, cut to ``limit`` characters ("" when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0][:limit] if lines else ""


def describe_error(e: BaseException) -> str:
    """One line for a failure: the message of our own errors, the kind and first line of others."""
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        return f"out of memory ({first_line(e) or 'the allocation failed'}); try a smaller --tile or --max-memory"
    if isinstance(e, AlgnetError):
        return str(e)  # ours: one line already (a file name may hold a newline; the CLI escapes it)
    if isinstance(e, OSError) and e.strerror:  # a plain sentence naming the file
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    text = first_line(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
