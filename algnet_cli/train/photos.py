"""Fetch real photographs for training from Debian wallpaper packages, with a sha256 manifest.

Usage: python -m algnet_cli.train.photos OUTDIR

Downloads (does not install) three Debian packages, extracts the photographs among their
wallpapers (renders and art are left out by name), downscales each by 2 (area) to hide JPEG
artefacts, and writes OUTDIR/{train,val}/NAME.png plus OUTDIR/manifest.json (file, sha256 of the
source, package, author, licence) and OUTDIR/ATTRIBUTION.md. The split is by photo: every fifth
photo, in name order, is held out for validation. Needs apt-get and dpkg-deb (Debian/Ubuntu).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path

PACKAGES = {
    "lomiri-wallpapers-16.04": "CC-BY / CC-BY-SA / CC0, per file (see the package's copyright file)",
    "plasma-workspace-wallpapers": "LGPL-3 / CC-BY-SA-4.0, per wallpaper (see the package's copyright file)",
    "enlightenment-data": "BSD-2-Clause / CC, per file (see the package's copyright file)",
}
PLASMA_PHOTOS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
LOMIRI_NOT_PHOTOS = ("analogpattern",)
ENLIGHTENMENT_NOT_PHOTOS = ("Dunes", "Flat-", "Paper-Flower", "Sunset-Hills", "Squiggle")


def _largest_jpeg(data: bytes):
    from PIL import Image

    best = None
    for m in re.finditer(b"\xff\xd8\xff", data):
        try:
            im = Image.open(io.BytesIO(data[m.start() :]))
            im.load()
        except Exception:  # not a decodable JPEG at this offset
            continue
        if best is None or im.size[0] * im.size[1] > best.size[0] * best.size[1]:
            best = im.convert("RGB")
    return best


def candidates(root: Path):
    """(name, package, author, PIL image loader) of every photograph in the extracted packages."""
    from PIL import Image

    for f in sorted((root / "usr/share/backgrounds").glob("*.jpg")):
        if not any(f.name.startswith(x) for x in LOMIRI_NOT_PHOTOS):
            author = f.stem.split("_by_")[-1].replace("_", " ") if "_by_" in f.stem else "unknown"
            yield f"lomiri-{f.stem}", "lomiri-wallpapers-16.04", author, f, lambda f=f: Image.open(f).convert("RGB")
    for name in PLASMA_PHOTOS:
        images = sorted((root / f"usr/share/wallpapers/{name}/contents/images").glob("*"))
        if images:
            f = max(images, key=lambda p: _pixels(p.stem))
            yield (
                f"plasma-{name}",
                "plasma-workspace-wallpapers",
                "see metadata",
                f,
                lambda f=f: Image.open(f).convert("RGB"),
            )
    for f in sorted((root / "usr/share/enlightenment/data/backgrounds").glob("*.edj")):
        if not any(f.stem.startswith(x) for x in ENLIGHTENMENT_NOT_PHOTOS):
            yield (
                f"e-{f.stem}",
                "enlightenment-data",
                "Enlightenment project",
                f,
                lambda f=f: _largest_jpeg(f.read_bytes()),
            )


def _pixels(stem: str) -> int:
    m = re.match(r"(\d+)x(\d+)", stem)
    return int(m[1]) * int(m[2]) if m else 0


def main(out: Path) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True)
        for deb in tmp.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True)
        manifest = []
        found = list(candidates(tmp / "x"))
        for i, (name, package, author, src, load) in enumerate(found):
            im = load()
            if im is None:
                continue
            split = "val" if i % 5 == 4 else "train"
            im = im.resize((im.size[0] // 2, im.size[1] // 2), Image.Resampling.BOX)
            dst = out / split / f"{name}.png"
            dst.parent.mkdir(exist_ok=True)
            im.save(dst, compress_level=3)
            manifest.append(
                dict(
                    file=f"{split}/{name}.png",
                    source=src.relative_to(tmp / "x").as_posix(),
                    package=package,
                    source_sha256=hashlib.sha256(src.read_bytes()).hexdigest(),
                    author=author,
                    licence=PACKAGES[package],
                    size=list(im.size),
                )
            )
            print(f"{split:5} {name} {im.size[0]}x{im.size[1]}", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    lines = ["# Training photographs", "", "Photographs from Debian wallpaper packages, downscaled by 2.", ""]
    lines += [
        f"- `{m['file']}`: {m['source']} from `{m['package']}`, by {m['author']}; licence: {m['licence']}"
        for m in manifest
    ]
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="where the train/ and val/ photos, manifest and attribution go")
    main(ap.parse_args().folder)
