"""``algnet doctor``: what this machine offers algnet-cli."""

from __future__ import annotations

import platform

from .errors import handle_errors


@handle_errors
def doctor() -> None:
    """Show the torch build, devices, bf16 support, selective-scan backends, the CPU kernel cache, video codecs and Ray.

    Example:

      algnet doctor
    """
    import torch
    import typer

    from .. import __version__
    from ..ops import available_backends, default_backend, resolve_backend

    lines = [
        f"algnet-cli   {__version__}",
        f"python       {platform.python_version()} ({platform.machine()})",
        f"torch        {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})",
        f"threads      {torch.get_num_threads()}",
    ]
    from ..cpu import cpu_facts, memory_state

    cpu_name, bf16_flags = cpu_facts()
    native = f"native bf16 ({', '.join(bf16_flags)})" if bf16_flags else "no native bf16"
    lines.append(f"cpu          {cpu_name}; {native}")
    lines.append(
        "cpu precision auto -> fp32; bf16 on request (--precision bf16): "
        + (
            "on an AMX Xeon it measured no faster than fp32 (docs/benchmarks.md)"
            if bf16_flags
            else "emulated on this CPU, slower than fp32"
        )
    )
    lines.append(f"cpu memory   {memory_state()}")
    devices = ["cpu"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(i)
            bf16 = torch.cuda.is_bf16_supported() if i == torch.cuda.current_device() else "?"
            lines.append(f"cuda:{i}       {name} (bf16: {'yes' if bf16 else 'no'})")
        devices.append("cuda")
    else:
        lines.append("cuda         not available")
    lines.append(f"scan default {default_backend()} (ALGNET_SCAN)")
    for dev in devices:
        avail = available_backends(dev)
        names = ", ".join(f"{k}{'' if v else ' (unavailable)'}" for k, v in avail.items())
        lines.append(f"scan on {dev:<4} auto -> {resolve_backend('auto', dev)}; {names}")
    from ..ops import scan_triton

    lines.append(f"triton scan  {scan_triton.kernel_description()}")
    lines.append(f"cpu kernel   {_fused_kernel_state()}")
    lines += [f"             {line}" for line in _kernel_problems()]
    lines += _registry_lines()
    try:
        from ..video import describe_backend

        lines.append(f"video        {describe_backend()}")
    except Exception as e:  # noqa: BLE001 - doctor reports, it does not fail
        lines.append(f"video        unavailable ({e})")
    lines.append(f"cluster      {_ray_state()}")
    typer.echo("\n".join(lines))


def _registry_lines() -> list[str]:
    """The registries' state: how many models, and every problem, one line each."""
    from ..hub import registry, registry_problems, user_registry_path

    problems = registry_problems()
    head = f"registry     {len(registry())} models; yours: {user_registry_path()}"
    return [head] + [f"             problem: {p}" for p in problems]


def _kernel_problems() -> list[str]:
    """What would make every CPU run fall back to the slower chunked scan, or run the fused one as
    plain Python: NUMBA_DISABLE_JIT, a kernel cache that cannot be written, a damaged cache."""
    from ..fileio import make_temp
    from ..ops import scan_fused
    from ..paths import kernel_cache_dir

    out = []
    if scan_fused.jit_disabled():
        out.append(f"problem: {scan_fused.JIT_DISABLED}; until then algnet uses the chunked scan")
    folder = kernel_cache_dir()
    probe_in = folder if folder.exists() else next((p for p in folder.parents if p.exists()), folder)
    try:
        make_temp(probe_in / "probe").unlink()
    except OSError as e:
        out.append(
            f"problem: the kernel cache {folder} cannot be written ({e.strerror or e}): every CPU run falls back "
            "to the chunked scan, about 4x slower; set ALGNET_KERNEL_CACHE to a writable folder"
        )
    damaged = sorted(p.name for p in folder.rglob("*.nb[ic]") if p.stat().st_size == 0) if folder.is_dir() else []
    index = {p.stem for p in folder.rglob("*.nbi")} if folder.is_dir() else set()
    orphans = sorted(p.name for p in folder.rglob("*.nbc") if not any(p.stem.startswith(i) for i in index))
    if damaged or orphans:
        out.append(
            f"problem: the kernel cache {folder} is damaged ({', '.join((damaged + orphans)[:3])}"
            f"{' ...' if len(damaged + orphans) > 3 else ''}): the next CPU run rebuilds it (~20 s)"
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
    note = "" if state == "compiled" else "; the first CPU run compiles it, once (~20 s)"
    return f"fused scan (numba {numba.__version__}): {state}, cache {kernel_cache_dir()}{note}"
