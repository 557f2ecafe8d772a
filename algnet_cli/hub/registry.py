"""Model references and the registries: what a name or an ``hf://`` reference means (pure, no network)."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, UsageError
from ..fileio import atomic_write_text
from ..paths import CACHE_ENV as CACHE_ENV  # re-exported: where the cache root is set
from ..paths import cache_root

CONFIG_ENV = "ALGNET_CONFIG_DIR"

HF_PREFIX = "hf://"

_HF_RX = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>refs/(?:pr|convert)/[^/]+|[^/]+))?/(?P<path>.+)$")


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str
    revision: str = "main"

    def __str__(self) -> str:
        rev = "" if self.revision == "main" else f"@{self.revision}"
        return f"{HF_PREFIX}{self.repo_id}{rev}/{self.filename}"


@dataclass(frozen=True)
class RegistryEntry:
    """A named model: where it comes from and what its card says."""

    name: str
    source: str  # hf://..., or a path (relative paths are relative to the registry file)
    sha256: str | None = None
    revision: str | None = None  # pins an hf:// source
    config: dict = field(default_factory=dict)
    licence: str = ""
    description: str = ""
    benchmarks: dict = field(default_factory=dict)
    builtin: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("builtin")
        return d


def parse_ref(ref: str) -> HubRef | None:
    """The Hub reference in ``ref``, or None when it is not an ``hf://`` reference."""
    if not ref.startswith(HF_PREFIX):
        return None
    m = _HF_RX.match(ref)
    if not m:
        raise UsageError(f"{ref}: a Hub reference looks like hf://owner/repo[@revision]/file.safetensors")
    for segment in [*m["repo"].split("/"), *m["path"].split("/")]:
        if segment in ("", ".", "..") or "\\" in segment:
            raise UsageError(f"{ref}: the path segment {segment!r} is not allowed in a Hub reference")
    return HubRef(m["repo"], m["path"], m["rev"] or "main")


def cache_dir(override: str | Path | None = None) -> Path:
    return cache_root(override)


def config_dir() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("algnet-cli"))


def user_registry_path() -> Path:
    return config_dir() / "models.json"


BUILTIN_REGISTRY = Path(__file__).parent.parent / "registry.json"

#: each registry entry's keys and the types their values must have
_ENTRY_TYPES: dict[str, Any] = {"name": str, "source": str, "sha256": (str, type(None)), "revision": (str, type(None)),
                "config": dict, "licence": str, "description": str, "benchmarks": dict}  # fmt: skip
_told: set[str] = set()
_log = logging.getLogger("algnet_cli.hub")


def parse_registry(path: Path, builtin: bool = False) -> tuple[list[RegistryEntry], list[str]]:
    """The usable entries of a registry file, and one line per problem, naming the file and the
    entry. A bad entry is skipped (the others stay usable), an unknown key is ignored; a file that
    is not a registry at all gives no entries. A byte-order mark is allowed."""
    if not path.is_file():
        return [], []
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as e:
        return [], [f"{path}: not valid JSON ({e}); none of its models can be used until it is fixed"]
    if not isinstance(doc, dict) or not isinstance(doc.get("models", []), list):
        return [], [f"{path}: not a model registry (an object whose \"models\" is a list); none of its models "
                    "can be used until it is fixed"]  # fmt: skip
    entries, problems = [], []
    default = doc.get("default")
    if default is not None and not isinstance(default, str):
        problems.append(f'{path}: "default" must be a model name, not {type(default).__name__}; ignored')
    for i, item in enumerate(doc.get("models", [])):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"entry {i + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        if not isinstance(item, dict):
            problems.append(f"{path}: {label}: not an object; skipped")
            continue
        missing = [k for k in ("name", "source") if k not in item]
        if missing:
            problems.append(f"{path}: {label}: no {' or '.join(missing)}; skipped")
            continue
        extra = sorted(set(item) - set(_ENTRY_TYPES))
        if extra:
            problems.append(f"{path}: {label}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)} ignored")
        item = {k: v for k, v in item.items() if k in _ENTRY_TYPES}
        wrong = [k for k, v in item.items() if not isinstance(v, _ENTRY_TYPES[k])]
        if wrong:
            k = wrong[0]
            want = {str: "text", dict: "an object"}.get(_ENTRY_TYPES[k], "text or null")
            problems.append(f"{path}: {label}: {k} must be {want}, not {type(item[k]).__name__}; skipped")
            continue
        src = item["source"]
        if not src.startswith(HF_PREFIX) and not Path(src).is_absolute():
            item = {**item, "source": str(path.parent / src)}
        entries.append(RegistryEntry(**item, builtin=builtin))
    return entries, problems


def _read_registry(path: Path, builtin: bool) -> list[RegistryEntry]:
    entries, problems = parse_registry(path, builtin)
    for line in problems:  # each said once per process, on stderr
        if line not in _told:
            _told.add(line)
            _log.warning("registry: %s", line)
    return entries


def registry_problems() -> list[str]:
    """Every problem of the built-in and the user registry, one line each (for ``algnet doctor``)."""
    out = []
    for path, builtin in ((BUILTIN_REGISTRY, True), (user_registry_path(), False)):
        out += parse_registry(path, builtin)[1]
    name = default_model_name()
    if name and name != DEFAULT and name not in {e.name for e in registry()}:
        out.append(f'"default" names {name!r}, which is not a registered model')
    return out


DEFAULT = "default"


def default_model_name() -> str | None:
    """The model that ``default`` names: the user registry's choice, else the built-in one."""
    for path in (user_registry_path(), BUILTIN_REGISTRY):
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8-sig"))
            except (ValueError, OSError):
                continue
            name = doc.get("default") if isinstance(doc, dict) else None
            if isinstance(name, str) and name:
                return name
    return None


def registry() -> list[RegistryEntry]:
    """Built-in entries, then the user's (a user entry with a built-in name replaces it)."""
    entries = {e.name: e for e in _read_registry(BUILTIN_REGISTRY, True)}
    entries.update({e.name: e for e in _read_registry(user_registry_path(), False)})
    return list(entries.values())


def find_entry(name: str) -> RegistryEntry | None:
    asked = name
    if name == DEFAULT:
        name = default_model_name() or name
    found = next((e for e in registry() if e.name == name), None)
    if found is None and asked == DEFAULT and name != DEFAULT:
        names = ", ".join(e.name for e in registry()) or "none"
        raise ModelNotFoundError(
            f'the registry\'s "default" names {name!r}, which is not a registered model (registered: {names}); '
            'edit "default" in the user registry, or name a model with --model'
        )
    return found


def registry_lock():
    """The lock that every read-modify-write of the user registry holds (other processes wait)."""
    from filelock import FileLock

    path = user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=60)


def save_user_entry(entry: RegistryEntry, *, replace: bool = True) -> None:
    """Add ``entry`` to the user registry (under its lock); with ``replace=False`` a name already
    registered is a UsageError."""
    with registry_lock():
        if not replace and find_entry(entry.name) is not None:
            raise UsageError(f"a model named {entry.name!r} is already registered; use --force to replace it")
        path = user_registry_path()
        entries = [e for e in _read_registry(path, False) if e.name != entry.name] + [entry]
        _write_user_registry(path, entries)


def remove_user_entry(name: str) -> RegistryEntry | None:
    with registry_lock():
        path = user_registry_path()
        entries = _read_registry(path, False)
        gone = next((e for e in entries if e.name == name), None)
        if gone is not None:
            _write_user_registry(path, [e for e in entries if e.name != name])
        return gone


def _write_user_registry(path: Path, entries: list[RegistryEntry]) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig")) if path.is_file() else {}
    except ValueError as e:  # never written over: the user's edits are theirs to fix
        raise UsageError(
            f"{path}: not valid JSON ({e}); fix it (or move it away) before changing the registry"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a model registry; fix it (or move it away) before changing the registry")
    data["models"] = [e.to_json() for e in entries]
    atomic_write_text(path, json.dumps(data, indent=2))
