"""``algnet doctor``: what this machine offers algnet-cli."""

from __future__ import annotations

import platform
from typing import Annotated

import typer

from .errors import handle_errors


@handle_errors
def doctor(
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")] = False,
) -> None:
    """Show the torch build, devices, bf16 support, selective-scan backends, the CPU kernel cache, video codecs and Ray.

    Every problem found is a line of its own (and a "problems" list with --json).

    Examples:

      algnet doctor

      algnet doctor --json
    """
    facts, problems = _facts()
    if json_out:
        import json

        typer.echo(json.dumps({**dict(facts), "problems": problems}, indent=2))
        return
    lines = [f"{key.replace('_', ' '):<12} {value}" for key, value in facts]
    lines += [f"{'':<12} problem: {p}" for p in problems]
    typer.echo("\n".join(lines))


def _facts() -> tuple[list[tuple[str, str]], list[str]]:
    """(key, value) facts about this machine, in the order shown, and the problems found."""
    import torch

    from .. import __version__
    from ..cpu import cpu_facts, memory_state
    from ..ops import available_backends, default_backend, resolve_backend, scan_triton

    cpu_name, bf16_flags = cpu_facts()
    native = f"native bf16 ({', '.join(bf16_flags)})" if bf16_flags else "no native bf16"
    facts = [
        ("algnet-cli", __version__),
        ("python", f"{platform.python_version()} ({platform.machine()})"),
        ("torch", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'no'})"),
        ("threads", str(torch.get_num_threads())),
        ("cpu", f"{cpu_name}; {native}"),
        (
            "cpu_precision",
            "auto -> fp32; bf16 on request (--precision bf16): "
            + (
                "on an AMX Xeon it measured no faster than fp32 (docs/benchmarks.md)"
                if bf16_flags
                else "emulated on this CPU, slower than fp32"
            ),
        ),
        ("cpu_memory", memory_state()),
    ]
    devices = ["cpu"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            bf16 = torch.cuda.is_bf16_supported() if i == torch.cuda.current_device() else "?"
            facts.append((f"cuda:{i}", f"{torch.cuda.get_device_name(i)} (bf16: {'yes' if bf16 else 'no'})"))
        devices.append("cuda")
    else:
        facts.append(("cuda", "not available"))
    facts.append(("scan_default", f"{default_backend()} (ALGNET_SCAN)"))
    for dev in devices:
        names = ", ".join(f"{k}{'' if v else ' (unavailable)'}" for k, v in available_backends(dev).items())
        facts.append((f"scan_on_{dev}", f"auto -> {resolve_backend('auto', dev)}; {names}"))
    facts.append(("triton_scan", scan_triton.kernel_description()))
    facts.append(("cpu_kernel", _fused_kernel_state()))
    problems = _kernel_problems()
    from ..hub import registry, registry_problems, user_registry_path

    facts.append(("registry", f"{len(registry())} models; yours: {user_registry_path()}"))
    problems += registry_problems()
    try:
        from ..video import describe_backend

        facts.append(("video", describe_backend()))
    except Exception as e:  # noqa: BLE001 - doctor reports, it does not fail
        facts.append(("video", f"unavailable ({e})"))
    facts.append(("cluster", _ray_state()))
    return facts, problems


def _kernel_problems() -> list[str]:
    """What would make every CPU run fall back to the slower chunked scan, or run the fused one as
    plain Python: NUMBA_DISABLE_JIT, a kernel cache that cannot be written, a damaged cache."""
    from ..fileio import probe_writable
    from ..ops import scan_fused
    from ..paths import kernel_cache_dir

    out = []
    if scan_fused.jit_disabled():
        out.append(f"{scan_fused.JIT_DISABLED}; until then algnet uses the chunked scan")
    folder = kernel_cache_dir()
    probe_in = folder if folder.exists() else next((p for p in folder.parents if p.exists()), folder)
    try:
        probe_writable(probe_in)
    except OSError as e:
        out.append(
            f"the kernel cache {folder} cannot be written ({e.strerror or e}): every CPU run falls back "
            "to the chunked scan, about 4x slower; set ALGNET_KERNEL_CACHE to a writable folder"
        )
    damaged = sorted(p.name for p in folder.rglob("*.nb[ic]") if p.stat().st_size == 0) if folder.is_dir() else []
    index = {p.stem for p in folder.rglob("*.nbi")} if folder.is_dir() else set()
    orphans = sorted(p.name for p in folder.rglob("*.nbc") if not any(p.stem.startswith(i) for i in index))
    if damaged or orphans:
        out.append(
            f"the kernel cache {folder} is damaged ({', '.join((damaged + orphans)[:3])}"
            f"{' ...' if len(damaged + orphans) > 3 else ''}): the next CPU run rebuilds it (under a minute)"
        )
    return out


def _ray_state() -> str:
    """Whether Ray is installed for ``--cluster`` (its version, read without importing it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"Ray {version('ray')} (algnet deblur --cluster)"
    except PackageNotFoundError:
        return "Ray not installed (pip install 'algnet-cli[ray]' for --cluster)"


def _fused_kernel_state() -> str:
    """Whether the fused CPU scan is installed, compiled and cached (nothing is compiled here)."""
    from ..ops import scan_fused
    from ..paths import kernel_cache_dir

    if not scan_fused.available():
        return f"fused scan unavailable ({scan_fused.unavailable_reason()})"
    import numba

    state = scan_fused.cache_state()
    note = "" if state == "compiled" else "; the first CPU run compiles it, once (under a minute)"
    return f"fused scan (numba {numba.__version__}): {state}, cache {kernel_cache_dir()}{note}"
