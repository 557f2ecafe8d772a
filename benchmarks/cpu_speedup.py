"""The CPU forward of this tree against an earlier revision, side by side in one run.

For each model, fresh processes alternate between the two trees (the revision is unpacked with
``git archive`` into a temporary folder, with its own kernel cache): each loads the model as the
command does (the allocator tuning of ``algnet deblur``, the fused scan, TLC for the embedded model),
runs one warm-up forward, then ``--forwards`` timed forwards on the same seeded input. The time of
a tree is the median over its processes of each one's best; the peak is the resident memory the
forwards added over what loading left (VmHWM). The outputs of the two trees are compared, as the
largest difference over the output's range.

- ``algnet-small``, the embedded default, with the test-time local converter;
- the GoPro-size configuration: the official code's default (``algnet_cli.model.DEFAULT``, 54.6 M
  values), seeded random weights (the block
  scales that start at zero made random too, so that every block counts), saved once and loaded
  strictly by both trees.

Run: python benchmarks/cpu_speedup.py [--against e40d8ef] [--size 1280x720] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import machine, recorded  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: what one process runs, with the tree under test first on sys.path
CHILD = r"""
import json, sys, time
tree, which, weights, inp, out, forwards, helpers = sys.argv[1:8]
sys.path.insert(0, tree)
sys.path.insert(1, helpers)
import numpy as np, torch
from _measure import _hwm_mb, _reset_peak, _rss_mb
from algnet_cli.cpu import keep_freed_memory
keep_freed_memory()  # as `algnet deblur` does
if which == "algnet-small":
    from algnet_cli import load_model
    net = load_model("default", scan="auto", tlc=True)
else:
    from algnet_cli.model import ALGNet, ALGNetConfig
    net = ALGNet(ALGNetConfig(**json.loads(which))).eval()
    net.load_state_dict(torch.load(weights), strict=True)
x = torch.load(inp)
base = _rss_mb()
_reset_peak()
times = []
with torch.inference_mode():
    y = net(x)[-1]
    for _ in range(int(forwards)):
        t = time.perf_counter()
        y = net(x)[-1]
        times.append(time.perf_counter() - t)
if out != "-":
    np.save(out, y.float().numpy())
print(json.dumps({"best": min(times) if times else 0.0, "peak": _hwm_mb() - base}))
"""


def unpack(rev: str, folder: Path) -> Path:
    """The revision's files (the package and its weights) in ``folder``."""
    archive = subprocess.run(["git", "archive", rev, "algnet_cli"], cwd=ROOT, capture_output=True, check=True)
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def child(tree: Path, cache: Path, which: str, weights: Path, inp: Path, out: str, forwards: int) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(tree)}
    args = [sys.executable, "-c", CHILD, str(tree), which, str(weights), str(inp), out, str(forwards), str(HERE)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"the forward in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="e40d8ef", help="the earlier revision (default e40d8ef)")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    ap.add_argument("--models", default="algnet-small,gopro-size")
    ap.add_argument("--rounds", type=int, default=2, help="processes per tree, alternated")
    ap.add_argument("--forwards", type=int, default=2, help="timed forwards per process (after one warm-up)")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/cpu_speedup_MACHINE.txt)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    import numpy as np
    import torch

    with recorded("cpu_speedup", args.out), tempfile.TemporaryDirectory(prefix="algnet-speedup-") as tmp:
        work = Path(tmp)
        rev = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, capture_output=True, text=True)
        label = rev.stdout.strip() or args.against
        trees = {
            "this tree": (ROOT, work / "cache-now"),
            label: (unpack(args.against, work / "then"), work / "cache-then"),
        }
        print(f"CPU forward at {w}x{h}, fp32, this tree against {label}, on {machine()}, torch {torch.__version__}")
        print(f"  {args.rounds} processes per tree, alternated; each: a warm-up, then the best of {args.forwards}")
        torch.manual_seed(0)
        inp = work / "input.pt"
        torch.save(torch.rand(1, 3, h, w), inp)
        weights = work / "gopro.pt"
        for name in args.models.split(","):
            which = "algnet-small"
            if name == "gopro-size":
                from algnet_cli.model import DEFAULT, ALGNet

                torch.manual_seed(0)
                state = ALGNet(DEFAULT).state_dict()
                g = torch.Generator().manual_seed(1)
                for value in state.values():  # the scales ALGNet starts at zero (each block an identity)
                    if value.is_floating_point() and not value.any():
                        value.copy_(torch.randn(value.shape, generator=g) * 0.1)
                torch.save(state, weights)
                which = json.dumps(DEFAULT.to_dict())
            runs: dict[str, list[dict]] = {t: [] for t in trees}
            outs = {t: work / f"{name}-{i}.npy" for i, t in enumerate(trees)}
            for t, (tree, cache) in trees.items():  # compile or load the kernels, untimed
                child(tree, cache, which, weights, inp, str(outs[t]), 0)
            for _ in range(args.rounds):
                for t, (tree, cache) in trees.items():
                    runs[t].append(child(tree, cache, which, weights, inp, "-", args.forwards))
            a, b = (np.load(outs[t]) for t in trees)
            diff = float(np.abs(a - b).max() / max(float(b.max() - b.min()), 1e-12))
            times = {t: statistics.median(r["best"] for r in rs) for t, rs in runs.items()}
            peaks = {t: max(r["peak"] for r in rs) for t, rs in runs.items()}
            print(f"{name}")
            for t in trees:
                each = ", ".join(f"{r['best']:.2f}" for r in runs[t])
                print(f"  {t:<10} {times[t]:7.2f} s (each process: {each})   peak {peaks[t]:7.0f} MiB")
            now, then = times["this tree"], times[label]
            print(f"  this tree is {then / now:.2f}x as fast as {label}; peak {peaks['this tree'] / peaks[label]:.2f}x")
            print(f"  largest output difference: {diff:.2e} of the output's range")


if __name__ == "__main__":
    main()
