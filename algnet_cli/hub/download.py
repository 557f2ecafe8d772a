"""Fetching weights: the Hugging Face Hub cache, offline use, integrity checks, removing a model's files."""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from pathlib import Path

from ..errors import DownloadError, IntegrityError, ModelNotFoundError, UsageError, first_line
from ..fileio import sha256_file
from ..paths import CACHE_ENV
from .registry import (
    HF_PREFIX,
    HubRef,
    RegistryEntry,
    cache_dir,
    find_entry,
    parse_ref,
    registry,
    remove_user_entry,
)

_log = logging.getLogger("algnet_cli.hub")
_SHA256_RX = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1_RX = re.compile(r"^[0-9a-f]{40}$")


def shipped_file(path: Path) -> bool:
    """Whether ``path`` is a file of the installed package (never ours to delete)."""
    return _inside(path, Path(__file__).parent.parent)


def remove_model(name: str, cache: str | Path | None = None) -> tuple[RegistryEntry, Path | None, bool]:
    """Remove a model's user-registry entry and the files inside the cache that the entry owns:
    (the entry, the file removed, whether the entry was removed).

    ``name`` is a registry name, never a path: nothing outside the cache is deleted (a registered
    checkpoint of the user's own stays where it is), nor the weights that ship inside the package.
    """
    entry = find_entry(name)
    if entry is None:
        names = ", ".join(e.name for e in registry()) or "none"
        raise ModelNotFoundError(f"{name}: no registered model of that name (registered: {names})")
    path = _owned_file(entry, cache)
    if entry.builtin and path is None and parse_ref(entry.source) is None:
        raise UsageError(
            f"{name} ships inside algnet-cli ({entry.source}); its weights are part of the install and are not removed"
        )
    if path is not None:
        real = Path(os.path.realpath(path))
        path.unlink(missing_ok=True)
        if _inside(real, cache_dir(cache)):
            real.unlink(missing_ok=True)
    return entry, path, remove_user_entry(name) is not None


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(path)).parents


def _owned_file(entry: RegistryEntry, cache: str | Path | None) -> Path | None:
    """The file inside the cache that ``entry`` owns (its download, or its imported copy), if any."""
    root = cache_dir(cache)
    hub = parse_ref(entry.source)
    if hub is None:
        path = Path(entry.source)
        if os.path.lexists(path) and _inside(path, root) and not shipped_file(path):
            return path
        return None
    try:
        path = _entry_download(entry, hub, cache, offline=True, quiet=True)
    except (ModelNotFoundError, DownloadError):
        return None
    except IntegrityError:  # a corrupt download was deleted already
        return None
    return path if _inside(path, root) else None


def offline_default() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve(
    ref: str | Path, *, cache: str | Path | None = None, offline: bool | None = None, quiet: bool = False
) -> Path:
    """A local file for a model reference, downloading it into the cache when needed.

    Registry entries are pinned and checked against their sha256; Hub files are checked against
    the sha256 the Hub gives as their ETag (LFS files). A mismatch deletes the download.
    """
    offline = offline_default() if offline is None else offline
    ref = str(ref)
    local = Path(ref).expanduser()
    try:
        entry = None if ref.startswith(HF_PREFIX) else find_entry(ref)
    except UsageError:  # a broken user registry: a path that exists still loads, anything else says why
        if not os.path.lexists(local):
            raise
        entry = None
    if entry is None and not ref.startswith(HF_PREFIX) and os.path.lexists(local):  # a registry name wins
        if local.is_file():
            return local
        if local.is_dir():
            raise ModelNotFoundError(f"{ref}: is a directory; give a checkpoint file (.safetensors or .pth)")
        from ..fileio import unreadable_reason

        raise ModelNotFoundError(f"{ref}: not a regular file ({unreadable_reason(local) or 'a special file'})")
    if entry is None and not ref.startswith(HF_PREFIX):
        names = ", ".join(e.name for e in registry()) or "none"
        raise ModelNotFoundError(f"{ref}: no such file and no registered model of that name (registered: {names})")
    source = entry.source if entry else ref
    hub = parse_ref(source)
    if hub is None:  # a registry entry pointing at a local file
        path = Path(source)
        if not path.is_file():
            raise ModelNotFoundError(
                f"{ref}: registered file {path} is missing; import it again or `algnet models rm {ref}`"
            )
        _verify(path, entry.sha256 if entry else None, ref, delete=False)
        return path
    return _entry_download(entry, hub, cache, offline=offline, quiet=quiet)


def _entry_download(entry: RegistryEntry | None, hub: HubRef, cache, *, offline: bool, quiet: bool) -> Path:
    """The cached (or, online, downloaded) file of a Hub reference, pinned and checked by ``entry``."""
    if entry and entry.revision:
        hub = HubRef(hub.repo_id, hub.filename, entry.revision)
    path = _download(hub, cache_dir(cache), offline, quiet)
    if entry and entry.sha256:
        _verify(path, entry.sha256, str(hub), delete=True)
    elif _lfs_sha(path):
        _verify(path, _lfs_sha(path), str(hub), delete=True)
    else:
        _verify_git_blob(path, str(hub))
    return path


def _verify_git_blob(path: Path, label: str) -> None:
    """A file the Hub keeps in git (not LFS) is named after its ETag, its git blob id: sha1 of
    ``blob <size>\\0`` and its bytes. A mismatch deletes the download."""
    import hashlib

    real = Path(os.path.realpath(path))
    if not _GIT_SHA1_RX.match(real.name):
        return
    digest = hashlib.sha1(f"blob {real.stat().st_size}\0".encode())
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != real.name:
        path.unlink(missing_ok=True)
        real.unlink(missing_ok=True)
        raise IntegrityError(
            f"{label}: the download does not match the Hub's git blob id ({real.name[:12]}...); "
            "the corrupt download was deleted, try again"
        )


def _lfs_sha(path: Path) -> str | None:
    """The Hub names a cached blob after its ETag, which is the sha256 for LFS files."""
    blob = Path(os.path.realpath(path)).name
    return blob if _SHA256_RX.match(blob) else None


def _verify(path: Path, expected: str | None, label: str, delete: bool) -> None:
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        if delete:
            real = Path(os.path.realpath(path))
            path.unlink(missing_ok=True)
            real.unlink(missing_ok=True)
        raise IntegrityError(
            f"{label}: sha256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
            + ("; the corrupt download was deleted, try again" if delete else "")
        )


def _download(hub: HubRef, cache: Path, offline: bool, quiet: bool) -> Path:
    from huggingface_hub.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its retry lines: one line of ours says what happened instead
    try:
        return _fetch(hub, cache, offline, quiet)
    finally:  # the caller's logging as it was
        hf_logging.set_verbosity(previous)


def _fetch(hub: HubRef, cache: Path, offline: bool, quiet: bool) -> Path:
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    if not offline and _GIT_SHA1_RX.match(hub.revision) and (cached := _cached_copy(hub, cache)) is not None:
        return cached  # a commit never changes: its cached file needs no request
    if not offline:
        problem = _probe(hub)
        if problem is not None:  # the Hub cannot serve it now: a cached copy still can
            cached = _cached_copy(hub, cache)
            if cached is not None:
                if not quiet:
                    _log.warning("%s: %s; using the cached copy", hub, problem)
                return cached
            raise DownloadError(f"{hub}: {problem}")
    try:
        path = hf_hub_download(
            hub.repo_id,
            hub.filename,
            revision=hub.revision,
            cache_dir=str(cache),
            local_files_only=offline,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            tqdm_class=_silent_tqdm() if quiet else _shown_tqdm(),
        )
    except hf.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{hub}: the Hub has no repository {hub.repo_id} (or it is private: log in with `hf auth login`)"
        ) from None
    except hf.RevisionNotFoundError:
        raise ModelNotFoundError(f"{hub}: repository {hub.repo_id} has no revision {hub.revision!r}") from None
    except hf.LocalEntryNotFoundError:
        if offline:
            raise ModelNotFoundError(
                f"{hub}: not in the cache ({cache}) and offline mode forbids downloading; "
                "run `algnet models pull` once with network access, or drop --offline / HF_HUB_OFFLINE"
            ) from None
        raise DownloadError(
            f"{hub}: could not reach the Hub (no network or a timeout); check the connection or use --offline with a cached model"
        ) from None
    except hf.EntryNotFoundError:
        raise ModelNotFoundError(f"{hub}: repository {hub.repo_id}@{hub.revision} has no file {hub.filename}") from None
    except hf.HfHubHTTPError as e:
        raise DownloadError(f"{hub}: the Hub answered with an error ({str(e).splitlines()[0][:160]})") from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            raise DownloadError(
                f"{hub}: cannot write the model cache {cache} ({e.strerror}); free space there, or set "
                f"{CACHE_ENV} to a folder with room"
            ) from None
        raise DownloadError(f"{hub}: download failed ({first_line(e, 200) or type(e).__name__})") from None
    except Exception as e:  # noqa: BLE001 - the HTTP client's errors (a body cut short, a stall, a redirect loop)
        raise DownloadError(f"{hub}: download failed ({first_line(e, 200) or type(e).__name__}); try again") from None
    return Path(path)


def _cached_copy(hub: HubRef, cache: Path) -> Path | None:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, cache_dir=str(cache),
                                    local_files_only=True))  # fmt: skip
    except Exception:  # noqa: BLE001 - not cached
        return None


#: how long the Hub may take to answer a request (or to send the next bytes of a download)
READ_TIMEOUT_S = 10.0


def _probe(hub: HubRef) -> str | None:
    """One HEAD request for the file, no retries, within READ_TIMEOUT_S: None when the Hub answers
    as the Hub does (the file, or its own error, which the client then reports), else one line
    saying what the server answered: nothing, a server error, a rate limit, a page that is not the
    Hub's (a captive portal), a redirect loop."""
    import socket
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{hub.repo_id}/resolve/{quote(hub.revision, safe='')}/{quote(hub.filename)}"
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "algnet-cli"})
    try:
        from huggingface_hub import get_token

        token = get_token()
        if token:
            request.add_header("Authorization", f"Bearer {token}")
    except Exception:  # noqa: BLE001 - no token: anonymous
        pass
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as answer:
            status, headers = answer.status, answer.headers
    except urllib.error.HTTPError as e:
        status, headers = e.code, e.headers
        if status in (301, 302, 303, 307, 308):
            return f"{endpoint} answered with a redirect loop ({status} back to {headers.get('Location', url)})"
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return f"{endpoint} did not answer within {READ_TIMEOUT_S:g} s; check the network, or use --offline"
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        return f"cannot reach {endpoint} ({why.lower()}); check the network, or use --offline with a cached model"
    except TimeoutError:
        return f"{endpoint} did not answer within {READ_TIMEOUT_S:g} s; check the network, or use --offline"
    except OSError as e:
        return f"cannot reach {endpoint} ({(e.strerror or str(e)).lower()}); check the network"
    hub_speaks = any(h in headers for h in ("X-Repo-Commit", "X-Error-Code", "X-Linked-Etag", "ETag"))
    kind = (headers.get("Content-Type") or "").split(";")[0].strip()
    if status == 429:
        return "the Hub answered 429 Too Many Requests (rate limited); try again in a minute"
    if status >= 500:
        return f"the Hub answered {status} (a server error); it may be down: try again later"
    if status in (401, 403) or (hub_speaks and kind != "text/html"):
        return None  # the Hub itself: the file, or its own error, which the client reports
    if kind == "text/html" or not hub_speaks:
        return (f"{endpoint} answered {status} with {'an HTML page' if kind == 'text/html' else 'something'} "
                "that is not the Hub's (a captive portal or a proxy's sign-in page?)")  # fmt: skip
    return None


def _shown_tqdm():
    """The download's progress (bytes, rate) on a terminal; nothing into a pipe or a log."""
    from tqdm.auto import tqdm

    class Shown(tqdm):
        def __init__(self, *a, **k):
            k.pop("name", None)
            k["disable"] = not sys.stderr.isatty()
            super().__init__(*a, **k)

    return Shown


def _silent_tqdm():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *a, **k):
            k["disable"] = True
            super().__init__(*a, **k)

    return Silent


def cached_file(ref: str, cache: str | Path | None = None) -> Path | None:
    """The cached file for a reference or registry name, if present (no network)."""
    try:
        return resolve(ref, cache=cache, offline=True, quiet=True)
    except (ModelNotFoundError, IntegrityError, DownloadError):
        return None


def imported_dir(cache: str | Path | None = None) -> Path:
    return cache_dir(cache) / "imported"
