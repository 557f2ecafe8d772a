"""``algnet models``: the registry, the Hub cache, importing official checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import handle_errors
from .options import CacheDir, JsonOut, Offline

app = typer.Typer(
    name="models",
    help="List, download, inspect, import and remove models.\n\n"
    "Examples:\n\n"
    "  algnet models list\n\n"
    "  algnet models pull hf://owner/repo/algnet.safetensors\n\n"
    "  algnet models import ALGNet_GoPro.pth --name gopro\n\n"
    "  algnet models info gopro",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("list")
@handle_errors
def list_models(cache_dir: CacheDir = None, json_out: JsonOut = False) -> None:
    """Registered models: name, source, size, and whether they are in the cache.

    Examples:

      algnet models list

      algnet models list --json
    """
    from ..hub import cached_file, registry, user_registry_path

    entries = registry()
    rows: list[dict[str, Any]] = []
    for e in entries:
        path = cached_file(e.name, cache_dir)
        rows.append({
            "name": e.name, "source": e.source, "sha256": e.sha256, "builtin": e.builtin,
            "cached": str(path) if path else None, "bytes": path.stat().st_size if path else None,
            "licence": e.licence or None,
        })  # fmt: skip
    if json_out:
        import json

        typer.echo(json.dumps({"user_registry": str(user_registry_path()), "models": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models (user registry: {user_registry_path()})")
    for col in ("name", "source", "size", "cached", "licence"):
        table.add_column(col)
    for r in rows:
        size = f"{r['bytes'] / 2**20:.1f} MiB" if r["cached"] else "-"
        table.add_row(r["name"], r["source"], size, "yes" if r["cached"] else "no", r["licence"] or "-")
    Console().print(table)
    if not entries:
        typer.echo("no models registered yet: `algnet models import CHECKPOINT --name NAME` adds one", err=True)


@app.command()
@handle_errors
def pull(
    ref: Annotated[str, typer.Argument(help="A registry name or hf://owner/repo[@revision]/file.")],
    cache_dir: CacheDir = None,
    offline: Offline = False,
) -> None:
    """Download a model into the cache (sha256-checked) and print its local path.

    Example:

      algnet models pull hf://owner/repo@v1/algnet.safetensors
    """
    from ..hub import resolve

    typer.echo(str(resolve(ref, cache=cache_dir, offline=offline or None)))


@app.command()
@handle_errors
def info(
    ref: Annotated[str, typer.Argument(help="A registry name, hf:// reference or checkpoint path.")],
    cache_dir: CacheDir = None,
    offline: Offline = False,
    json_out: JsonOut = False,
) -> None:
    """Inferred configuration, parameter count, sha256 and licence of a model.

    Examples:

      algnet models info ALGNet_GoPro.pth

      algnet models info default --json
    """
    from ..fileio import sha256_file
    from ..hub import find_entry, resolve
    from ..model.checkpoint import infer_config, read_checkpoint

    path = resolve(ref, cache=cache_dir, offline=offline or None)
    sd = read_checkpoint(path)
    config = infer_config(sd, str(path))
    entry = find_entry(ref)
    if json_out:
        import json

        doc = {
            "file": str(path), "sha256": sha256_file(path), "config": config.to_dict(),
            "describe": config.describe(), "tensors": len(sd), "parameters": sum(v.numel() for v in sd.values()),
            "name": entry.name if entry else None, "licence": entry.licence or None if entry else None,
            "description": entry.description or None if entry else None,
            "benchmarks": entry.benchmarks if entry else {},
        }  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"file         {path}")
    typer.echo(f"sha256       {sha256_file(path)}")
    typer.echo(f"config       {config.describe()}")
    typer.echo(f"tensors      {len(sd)}")
    typer.echo(f"parameters   {sum(v.numel() for v in sd.values()):,}")
    if entry is not None:
        typer.echo(f"licence      {entry.licence or 'unknown'}")
        if entry.description:
            typer.echo(f"description  {entry.description}")
        for k, v in entry.benchmarks.items():
            typer.echo(f"benchmark    {k}: {v}")


@app.command("import")
@handle_errors
def import_model(
    checkpoint: Annotated[Path, typer.Argument(help="A .pth/.pt/.safetensors ALGNet checkpoint (any trainer layout).")],
    name: Annotated[str, typer.Option(metavar="NAME", help="Registry name to give it.")],
    licence: Annotated[
        str, typer.Option(metavar="TEXT", help="Licence of the weights, recorded in the registry.")
    ] = "",
    description: Annotated[str, typer.Option(metavar="TEXT", help="A line about the weights.")] = "",
    force: Annotated[bool, typer.Option("--force", help="Replace an entry of the same name.")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Convert a checkpoint to .safetensors in the cache and register it under NAME.

    Official .pth files load with torch.load(weights_only=True): nothing but tensors is read.

    Example:

      algnet models import ALGNet_GoPro.pth --name gopro --licence "see github.com/Tombs98/ALGNet"
    """
    import re

    from ..errors import UsageError
    from ..fileio import atomic_write, sha256_file
    from ..hub import RegistryEntry, find_entry, imported_dir, save_user_entry
    from ..model.checkpoint import build_from_state_dict, infer_config, read_checkpoint, save_safetensors

    if not re.fullmatch(r"[^\W_][\w.-]*", name):  # letters of any script, digits, '.', '_', '-'
        raise UsageError(f"{name!r}: a model name is letters, digits, '.', '_' and '-'")
    if name == "default":
        raise UsageError("'default' is an alias for the default model, not a name to import under; choose another")
    if find_entry(name) is not None and not force:
        raise UsageError(f"a model named {name!r} is already registered; use --force to replace it")
    sd = read_checkpoint(checkpoint)
    config = infer_config(sd, str(checkpoint))
    build_from_state_dict(sd, str(checkpoint))  # what deblur would refuse (keys, shapes, NaN, integers), refused now
    import uuid

    # a file of its own: an import that loses a race for the name removes only its own file
    dst = imported_dir(cache_dir) / f"{name}-{uuid.uuid4().hex[:8]}.safetensors"
    replaced = find_entry(name)
    atomic_write(dst, lambda p: save_safetensors(sd, p, metadata={"source": str(checkpoint)}))
    entry = RegistryEntry(
        name=name,
        source=str(dst.resolve()),
        sha256=sha256_file(dst),
        config=config.to_dict(),
        licence=licence,
        description=description or f"imported from {checkpoint.name}",
    )
    try:  # checked again under the registry's lock: another import may have taken the name meanwhile
        save_user_entry(entry, replace=force)
    except UsageError:
        dst.unlink(missing_ok=True)  # no orphan in the cache
        raise
    if replaced is not None and not replaced.builtin and Path(replaced.source).parent == imported_dir(cache_dir):
        Path(replaced.source).unlink(missing_ok=True)  # the file of the entry --force replaced
    typer.echo(f"registered {name}: {config.describe()} -> {dst}")


@app.command()
@handle_errors
def rm(
    name: Annotated[str, typer.Argument(help="Registry name.")],
    cache_dir: CacheDir = None,
) -> None:
    """Remove a model: its user-registry entry and the files inside the cache that it owns.

    NAME is looked up in the registry only: no file outside the cache is ever deleted (a registered
    checkpoint of your own stays where it is).

    Example:

      algnet models rm gopro
    """
    from .. import hub

    entry, path, removed = hub.remove_model(name, cache_dir)
    if not removed and entry.builtin:
        typer.echo(f"{name} ships with algnet-cli: its cached download was removed, the entry stays")
    else:
        kept = (
            "" if path is not None or hub.parse_ref(entry.source) else f"; its file {entry.source} is yours and stays"
        )
        typer.echo(f"removed {name}" + (f" and {path}" if path else "") + kept)
