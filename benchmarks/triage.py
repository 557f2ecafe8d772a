"""Blur triage: how well `algnet triage` tells blurred photos from sharp ones, and how fast it is.

The photos are those of ``python -m algnet_cli.train.photos DIR`` (real photographs from Debian
wallpaper packages): its ``train/`` photos calibrate the verdicts (``--calibrate`` fits the logistic
model and prints the constants for ``algnet_cli/triage/measure.py``), its ``val/`` photos are held out for the
test. Per photo, crops of 512 x 512 where the photo has the most detail in every direction (so that
a crop is in focus, not a defocused background); each crop sharp, blurred with a motion kernel
(camera-shake trajectory or straight line, 9 to 64 px) and with a defocus disk (radius 3 to 8 px),
blurred in linear light with a margin. A blurred crop that differs from the sharp one by less than
40 dB PSNR was not visibly blurred (a horizon blurred along itself) and is left out. Flat-dominated
crops: a clear sky or a plain wall (with sensor noise) over 70 to 90% of the crop, above a strip of
a detailed crop; they must be judged sharp.

Prints: ROC AUC, verdict accuracy (``unsure`` counted wrong), the confusion table, flat crops judged
sharp, the verdicts on ``examples/blurred/``; then the speed on 12 MP JPEGs (images per second with
the command line's two threads) against deblurring one of them with the embedded model.

Run: python benchmarks/triage.py --photos DIR [--calibrate] [--no-deblur]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, recorded  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CROP = 512
MARGIN = 40
VISIBLE_DB = 40.0


def _q8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def detailed_windows(img: np.ndarray, size: int, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` windows with the most detail in every direction, overlapping by at most 2/3."""
    from algnet_cli.triage import detail_map, working_grey

    g = working_grey(img, target=img.shape[0] * img.shape[1])
    e = detail_map(g, size)
    h, w = g.shape
    c = size // 2
    cand = sorted(
        ((e[y, x], y - c, x - c) for y in range(c, h - c + 1, 32) for x in range(c, w - c + 1, 32)), reverse=True
    )
    picks: list[tuple[int, int]] = []
    for _, y, x in cand:
        if all(abs(y - py) > size // 3 or abs(x - px) > size // 3 for py, px in picks):
            picks.append((y, x))
        if len(picks) == n:
            break
    return picks


def kernel(rng: np.random.Generator, kind: str) -> np.ndarray:
    from algnet_cli.train.kernels import disk_kernel, line_kernel, trajectory_kernel

    if kind == "motion":
        make = trajectory_kernel if rng.uniform() < 0.5 else line_kernel
        return make(rng, 67, min_length=9)  # extent 9 to 64 px
    return disk_kernel(rng, 31, radius=rng.uniform(3, 8))


def crops(folder: Path, per: int, seed: int) -> tuple[list, int]:
    """(image, label 0 sharp / 1 blurred, kind, photo) for each crop; and how many blurred crops
    were left out as not visibly blurred."""
    from algnet_cli.images import read_image
    from algnet_cli.train.synth import blur_linear

    rng = np.random.default_rng(seed)
    out, dropped = [], 0
    for p in sorted(folder.glob("*.png")):
        img = read_image(p)[..., :3]
        for y, x in detailed_windows(img, CROP, per):
            yy, xx = max(0, y - MARGIN), max(0, x - MARGIN)
            big = img[yy : y + CROP + MARGIN, xx : x + CROP + MARGIN].astype(np.float32) / 255
            sharp = _q8(big[y - yy : y - yy + CROP, x - xx : x - xx + CROP])
            out.append((sharp, 0, "sharp", p.name))
            for kind in ("motion", "defocus"):
                blurred = _q8(blur_linear(big, kernel(rng, kind))[y - yy : y - yy + CROP, x - xx : x - xx + CROP])
                mse = float(np.mean((blurred.astype(np.float64) - sharp) ** 2))
                if 10 * np.log10(255.0**2 / max(mse, 1e-12)) >= VISIBLE_DB:
                    dropped += 1
                    continue
                out.append((blurred, 1, kind, p.name))
    return out, dropped


def flat_part(rng: np.random.Generator, size: int) -> np.ndarray:
    """A clear sky (a smooth two-colour gradient) or a plain wall (one colour), with sensor noise."""
    rows = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    top, bottom = rng.uniform(0.2, 0.9, 3), rng.uniform(0.2, 0.9, 3)
    img = np.zeros((size, size, 3), np.float32) + (top * (1 - rows) + bottom * rows if rng.uniform() < 0.5 else top)
    return img + rng.normal(0, rng.uniform(0.3, 1.5) / 255, img.shape).astype(np.float32)


def flat_crops(folder: Path, per: int, seed: int) -> list:
    from algnet_cli.images import read_image

    rng = np.random.default_rng(seed)
    out = []
    for p in sorted(folder.glob("*.png")):
        img = read_image(p)[..., :3]
        for y, x in detailed_windows(img, CROP, per):
            detail = img[y : y + CROP, x : x + CROP].astype(np.float32) / 255
            edge = CROP * (1 - rng.uniform(0.1, 0.3))
            t = np.clip((np.arange(CROP, dtype=np.float32) - edge + 2) / 4, 0, 1)
            t = (t * t * (3 - 2 * t))[:, None, None]  # an object's outline: a few pixels wide
            out.append((_q8(flat_part(rng, CROP) * (1 - t) + detail * t), 0, "flat", p.name))
    return out


def structured_part(rng: np.random.Generator, texture: np.ndarray) -> np.ndarray:
    """A man-made scene of axis-aligned edges, on a photo's texture: a brick wall (courses of bricks
    in mortar) or a page (lines of dark glyphs on paper). Motion along one axis leaves the edges
    across it sharp, as it does on buildings and pages."""
    size = texture.shape[0]
    t = texture.astype(np.float32) / 255
    out = np.empty_like(t)
    if rng.uniform() < 0.5:  # bricks
        mortar = rng.uniform(0.6, 0.9, 3).astype(np.float32)
        out[:] = mortar
        y = 0
        while y < size:
            h = int(rng.integers(14, 40))
            x = -int(rng.integers(0, 60))
            while x < size:
                w = int(rng.integers(40, 110))
                tint = rng.uniform(0.4, 1.0, 3).astype(np.float32)
                y0, y1, x0, x1 = y + 2, min(size, y + h - 2), max(0, x + 2), min(size, x + w - 2)
                if y1 > y0 and x1 > x0:
                    out[y0:y1, x0:x1] = t[y0:y1, x0:x1] * tint
                x += w
            y += h
    else:  # a page
        out[:] = rng.uniform(0.8, 1.0) * (0.9 + 0.1 * t)
        ink = rng.uniform(0.0, 0.3)
        y = int(rng.integers(4, 20))
        while y < size - 12:
            h = int(rng.integers(7, 14))
            x = int(rng.integers(4, 30))
            while x < size - 8:
                w = int(rng.integers(2, 9))
                out[y : y + h, x : x + w] = ink
                x += w + int(rng.integers(1, 4)) + (int(rng.integers(4, 10)) if rng.uniform() < 0.2 else 0)
            y += h + int(rng.integers(5, 16))
    return out


def structured_crops(folder: Path, per: int, seed: int) -> list:
    """Man-made scenes (see :func:`structured_part`), sharp and blurred along an axis or at any angle."""
    from algnet_cli.images import read_image
    from algnet_cli.train.kernels import line_kernel
    from algnet_cli.train.synth import blur_linear

    rng = np.random.default_rng(seed)
    out = []
    for p in sorted(folder.glob("*.png")):
        img = read_image(p)[..., :3]
        for y, x in detailed_windows(img, CROP + 2 * MARGIN, per):
            scene = structured_part(rng, img[y : y + CROP + 2 * MARGIN, x : x + CROP + 2 * MARGIN])
            inner = slice(MARGIN, MARGIN + CROP)
            out.append((_q8(scene[inner, inner]), 0, "sharp", p.name))
            length = float(rng.uniform(9, 64))
            angle = float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)]))
            k = line_kernel(_Fixed(length, angle), 67, min_length=9)
            out.append((_q8(blur_linear(scene, k)[inner, inner]), 1, "motion", p.name))
    return out


def feature_matrix(samples: list) -> np.ndarray:
    from algnet_cli.triage import features, working_grey

    rows = [features(working_grey(s[0])) for s in samples]
    width = next(len(r) for r in rows if r is not None)
    return np.array([r if r is not None else np.full(width, np.nan) for r in rows])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 100) -> np.ndarray:
    """Weights and bias (last) of an L2-regularised logistic regression, by Newton's method."""
    xb = np.c_[x, np.ones(len(x))]
    w = np.zeros(xb.shape[1])
    reg = l2 * np.r_[np.ones(x.shape[1]), 0]
    for _ in range(iters):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) / len(y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """The probability that a blurred sample scores above a sharp one (ties count half)."""
    pos, neg = np.sort(score[label == 1]), np.sort(score[label == 0])
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def calibrate(photos: Path) -> None:
    samples, dropped = crops(photos / "train", per=4, seed=0)
    samples += flat_crops(photos / "train", per=3, seed=5)
    samples += structured_crops(photos / "train", per=2, seed=7)
    rng = np.random.default_rng(9)  # each crop again with sensor noise, and with noise and JPEG q75
    samples += [(_degrade(s[0], c, rng), *s[1:]) for s in list(samples) for c in ("noise", "jpeg75")]
    x = feature_matrix(samples)
    y = np.array([s[1] for s in samples], float)
    keep = np.isfinite(x).all(axis=1)
    w = fit_logistic(x[keep], y[keep])
    print(f"calibration: {keep.sum()} crops of {len(list((photos / 'train').glob('*.png')))} training photos "
          f"({dropped} blurred crops not visibly blurred, left out)")  # fmt: skip
    print(f"WEIGHTS = ({', '.join(f'{v:.2f}' for v in w[:-1])})")
    print(f"BIAS = {w[-1]:.2f}")
    p = 1 / (1 + np.exp(-(np.c_[x[keep], np.ones(keep.sum())] @ w)))
    blurred = np.sort(p[y[keep] == 1])
    for share in (0.005, 0.01, 0.02):
        print(
            f"score below which {share:.1%} of the training's blurred crops fall: {blurred[int(share * len(blurred))]:.3f}"
        )


def evaluate(photos: Path) -> None:
    from algnet_cli.images import read_image
    from algnet_cli.triage import MEASURE, blur_score, judge

    samples, dropped = crops(photos / "val", per=8, seed=1)
    flats = flat_crops(photos / "val", per=3, seed=3)
    scores = np.array([blur_score(s[0]) for s in samples])
    labels = np.array([s[1] for s in samples])
    kinds = np.array([s[2] for s in samples])
    verdicts = np.array([judge(s) for s in scores])
    correct = np.where(labels == 1, verdicts == "blurred", verdicts == "sharp")
    n_photos = len(list((photos / "val").glob("*.png")))
    print(f"measure: {MEASURE}")
    print(f"held-out: {len(samples)} crops of {CROP}x{CROP} from {n_photos} photos never used for calibration "
          f"({dropped} blurred crops not visibly blurred, left out)")  # fmt: skip
    print(f"ROC AUC: {roc_auc(scores, labels):.4f}")
    print(f"verdict accuracy (unsure counted wrong): {correct.mean():.1%}")
    print("confusion (rows: truth; columns: verdict):")
    print(f"  {'':10s} {'sharp':>7s} {'unsure':>7s} {'blurred':>7s} {'correct':>8s}")
    for kind in ("sharp", "motion", "defocus"):
        v = verdicts[kinds == kind]
        counts = [int((v == c).sum()) for c in ("sharp", "unsure", "blurred")]
        print(f"  {kind:10s} {counts[0]:7d} {counts[1]:7d} {counts[2]:7d} {correct[kinds == kind].mean():8.1%}")
    flat_verdicts = [judge(blur_score(s[0])) for s in flats]
    print(f"flat-dominated sharp crops judged sharp: {flat_verdicts.count('sharp')}/{len(flats)} "
          f"({flat_verdicts.count('sharp') / len(flats):.1%})")  # fmt: skip
    for p in sorted((ROOT / "examples" / "blurred").iterdir()):
        s = blur_score(read_image(p))
        print(f"examples/blurred/{p.name}: {judge(s)} (score {s:.3f})")


#: the sweep's blur: straight motion of these lengths (px, at about 1 MP) at these angles (degrees), and
#: defocus disks of these radii; "clearly blurred" is motion of 15 px or more, or any of these disks
SWEEP_LENGTHS = (9, 15, 21, 31)
SWEEP_ANGLES = (0, 45, 90, 135)
SWEEP_RADII = (3, 5)
CLEAR_LENGTH = 15
#: scikit-image's photographs (in its wheel; never used for calibration), held out with val/
#: (not clock: it is a really blurred photo; not moon: it has no sharp edge to show)
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "page", "camera", "grass", "gravel",
                  "text", "coins", "hubble_deep_field", "immunohistochemistry")  # fmt: skip


class _Fixed:
    """A stand-in generator whose uniform() returns the values given, in order (a kernel of a set
    length and angle from the training kernels' own drawing code)."""

    def __init__(self, *values):
        self.values = list(values)

    def uniform(self, *_):
        return self.values.pop(0)


def sweep_photos(photos: Path) -> list[tuple[str, np.ndarray]]:
    """The held-out photos at about 1 MP (the measure's working size), RGB uint8."""
    import cv2
    import skimage.data

    from algnet_cli.images import read_image

    out = []
    for p in sorted((photos / "val").glob("*.png")):
        out.append((p.stem, read_image(p)[..., :3]))
    for name in SKIMAGE_PHOTOS:
        img = getattr(skimage.data, name)()
        out.append((name, np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]))
    sized = []
    for name, img in out:
        h, w = img.shape[:2]
        f = min(1.0, (1e6 / (h * w)) ** 0.5)
        if f < 1:
            img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        sized.append((name, np.ascontiguousarray(img)))
    return sized


def _degrade(img: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """clean; noise (sensor noise, sigma 2 to 4 levels); jpeg75 (that noise, then JPEG at quality 75)."""
    import cv2

    if condition == "clean":
        return img
    noisy = _q8(img.astype(np.float32) / 255 + rng.normal(0, rng.uniform(2, 4) / 255, img.shape).astype(np.float32))
    if condition == "noise":
        return noisy
    ok, buf = cv2.imencode(".jpg", noisy[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def sweep(photos: Path) -> dict:
    """Every held-out photo, sharp and blurred (straight motion at every length and angle, defocus),
    clean, with noise, and with noise and JPEG q75: the share of clearly blurred photos called sharp,
    of sharp photos called blurred, and how many were unsure."""
    from algnet_cli.train.kernels import disk_kernel, line_kernel
    from algnet_cli.train.synth import blur_linear
    from algnet_cli.triage import blur_score, judge

    rng = np.random.default_rng(11)
    rows = []  # (photo, condition, kind, length or radius, verdict, score)
    todo = sweep_photos(photos)
    for name, img in todo:
        f = img.astype(np.float32) / 255
        versions = [("sharp", 0, img)]
        for length in SWEEP_LENGTHS:
            for angle in SWEEP_ANGLES:
                k = line_kernel(_Fixed(float(length), np.deg2rad(angle)), 67, min_length=length)
                versions.append(("motion", length, _q8(blur_linear(f, k))))
        for radius in SWEEP_RADII:
            versions.append(("defocus", radius, _q8(blur_linear(f, disk_kernel(rng, 31, radius=radius)))))
        for condition in ("clean", "noise", "jpeg75"):
            for kind, size, v in versions:
                s = blur_score(_degrade(v, condition, rng))
                rows.append((name, condition, kind, size, judge(s), s))
    print(f"sweep: {len(todo)} held-out photos at about 1 MP ({len(list((photos / 'val').glob('*.png')))} from "
          f"val/, {len(SKIMAGE_PHOTOS)} from scikit-image), each sharp, with straight motion of "
          f"{', '.join(map(str, SWEEP_LENGTHS))} px at {', '.join(map(str, SWEEP_ANGLES))} degrees, and defocus "
          f"of radius {', '.join(map(str, SWEEP_RADII))} px; clean, with noise, and with noise + JPEG q75")  # fmt: skip
    figures = {}
    for condition in ("clean", "noise", "jpeg75"):
        r = [x for x in rows if x[1] == condition]
        clear = [x for x in r if (x[2] == "motion" and x[3] >= CLEAR_LENGTH) or x[2] == "defocus"]
        short = [x for x in r if x[2] == "motion" and x[3] < CLEAR_LENGTH]
        sharp = [x for x in r if x[2] == "sharp"]
        called_sharp = sum(x[4] == "sharp" for x in clear) / len(clear)
        unsure = sum(x[4] == "unsure" for x in clear) / len(clear)
        sharp_blurred = sum(x[4] == "blurred" for x in sharp) / len(sharp)
        figures[condition] = (called_sharp, sharp_blurred)
        print(f"  {condition:7s} clearly blurred called sharp: {called_sharp:6.1%} of {len(clear)} "
              f"(unsure {unsure:.1%}); sharp called blurred: {sharp_blurred:6.1%} of {len(sharp)} "
              f"(unsure {sum(x[4] == 'unsure' for x in sharp) / len(sharp):.1%}); "
              f"{min(SWEEP_LENGTHS)} px motion called blurred: {sum(x[4] == 'blurred' for x in short) / len(short):.1%}")  # fmt: skip
    worst = sorted((x for x in rows if x[2] != "sharp" and x[4] == "sharp"), key=lambda x: x[5])[:8]
    for x in worst:
        print(f"    called sharp: {x[0]} {x[2]} {x[3]} ({x[1]}): {x[5]:.3f}")
    for x in [x for x in rows if x[2] == "sharp" and x[4] == "blurred"][:8]:
        print(f"    called blurred: {x[0]} sharp ({x[1]}): {x[5]:.3f}")
    return figures


def speed(photos: Path, deblur: bool) -> None:
    """12 MP JPEGs (4000 x 3000, quality 92) tiled from the held-out photos at their own scale (real
    detail at every pixel, as a phone photo has), through the command line's triage (decoding
    included, two threads); and the embedded model on one of them."""
    import cv2

    from algnet_cli.triage import triage

    sources = sorted((photos / "val").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(12):
            img = cv2.imread(str(sources[i % len(sources)]))
            big = np.concatenate([img, img[:, ::-1]] * 4, axis=1)
            big = np.concatenate([big, big[::-1]] * 4, axis=0)[:3000, :4000]
            paths.append(Path(tmp) / f"p{i}.jpg")
            cv2.imwrite(str(paths[-1]), np.roll(big, 97 * i, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 92])
        triage(paths[:2])  # warm-up: imports, first allocations
        t = time.perf_counter()
        rows = triage(paths)
        per = (time.perf_counter() - t) / len(rows)
        assert all(r.error is None for r in rows), [r.error for r in rows]
        print(f"triage, 12 MP JPEGs: {1 / per:.1f} images/s ({per * 1000:.0f} ms each, {len(rows)} images)")
        sheet = Path(tmp) / "preview" / "sheet.png"
        sheet.parent.mkdir()
        before = sorted(Path(tmp).iterdir())
        cmd = [sys.executable, "-m", "algnet_cli", "deblur", *map(str, paths[:8]), "--preview", str(sheet), "-q"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t
        extra = sorted(set(Path(tmp).rglob("*")) - set(before) - {sheet, sheet.parent})
        print(f"preview sheet of 8 of them, embedded model, end to end (start-up and model load included): "
              f"{wall:.1f} s; other files written: {len(extra)}")  # fmt: skip
        if deblur:
            from algnet_cli.api import Deblurrer
            from algnet_cli.images import read_image

            d = Deblurrer("default", device="cpu", quiet=True)
            img = read_image(paths[0])
            t = time.perf_counter()
            d.deblur(img)
            model = time.perf_counter() - t
            print(f"deblurring one of them with the embedded model: {model:.1f} s; triage is {model / per:.0f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True, help="the folder of python -m algnet_cli.train.photos")
    ap.add_argument("--calibrate", action="store_true", help="fit the verdict model and print its constants")
    ap.add_argument("--no-deblur", action="store_true", help="skip timing the model on a 12 MP photo")
    ap.add_argument("--sweep", action="store_true", help="only the sweep of held-out photos (no speed)")
    args = ap.parse_args()
    if args.calibrate:
        calibrate(args.photos)
        return
    if args.sweep:
        sweep(args.photos)
        return
    with recorded("triage"):
        print(machine())
        evaluate(args.photos)
        sweep(args.photos)
        speed(args.photos, not args.no_deblur)


if __name__ == "__main__":
    main()
