"""Which photos are blurred: a no-reference blur score, calibrated verdicts, and fast decoding.

The measure looks at how steep the image's steepest edges are. Along a direction, at a pixel on an
edge, it takes the step to the next pixel over the range of values within a few pixels around it
(the edge's contrast): about 1/2 to 1 for a sharp edge, about 1/w for an edge spread over w pixels.
The ratio does not change with contrast, and only the pixels with the largest local range (the
strongest 10% of edges) count, so flat regions (sky, walls) do not weigh in. Blur spreads every edge,
so even the steepest edges become shallow; a sharp photo keeps some steep edges wherever it is in
focus. Motion blur spreads edges along one direction only, so the most blurred of four directions
decides. The percentiles of these steepness values, taken on a grey copy of about one megapixel,
are combined by a logistic model into the blur score: the calibrated probability that the photo is
blurred (0 sharp, 1 blurred).

The model's weights were fitted once (``python benchmarks/triage.py --calibrate``) on the training
photos of :mod:`algnet_cli.train.photos`: sharp crops against the same crops blurred with the
training kernels (motion 9 to 64 px, defocus radius 3 to 8 px), plus sharp crops that are mostly sky
or wall. The held-out photos are kept for ``benchmarks/triage.py``'s test. Scores within
:data:`UNSURE_BAND` above the threshold and :data:`SHARP_MARGIN` below it are ``unsure``.
"""

from __future__ import annotations

import numpy as np

#: the measure is taken at about this many pixels (larger images are reduced, smaller ones kept)
TARGET_PIXELS = 1_000_000
#: steps: right, down, and both diagonals
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: the local range (an edge's contrast) is taken over this many pixels along each direction
RANGE_SPAN = {True: 15, False: 11}  # along an axis, along a diagonal (11 diagonal steps ~ 15 px)
#: only the pixels whose local range is in this top share count as edges
EDGE_SHARE = 0.10
#: ... and at least this range (on [0, 1]): below it, an edge is no more than rounding noise
MIN_EDGE_RANGE = 4 / 255
#: the statistics are taken on every STATS_STRIDE-th pixel of every STATS_STRIDE-th row (cheaper, and
#: as good: neighbouring pixels of an edge say the same)
STATS_STRIDE = 2
#: fewer edge pixels than this (per direction, among those sampled): nothing to judge (a clear sky)
MIN_EDGES = 32
#: percentiles of edge steepness used (at the working scale, and again at half of it)
PERCENTILES = (50, 90, 98)
#: the logistic model (fitted by ``benchmarks/triage.py --calibrate``): weights on the log of
#: [min over directions of each percentile, mean over directions of each, the same min at half
#: the working scale], and the bias
WEIGHTS = (-0.60, 0.31, -3.45, -0.26, 1.86, -1.99, 2.10, -0.30, -4.05, -2.56, -0.52, -0.12)
BIAS = -4.98
#: verdicts on the score: blurred above THRESHOLD + UNSURE_BAND, sharp below THRESHOLD - SHARP_MARGIN,
#: unsure between. The sharp side is the wider: a blurred photo called sharp is the costly mistake
#: (``--skip-sharp`` copies it undeblurred), a sharp one called unsure only costs a deblurring. With the
#: calibration's noisy and compressed crops, 0.5% of its blurred crops score below 0.21.
THRESHOLD = 0.5
UNSURE_BAND = 0.05
SHARP_MARGIN = 0.3
MEASURE = "edge steepness, most blurred of 4 directions, grey at ~1 MP"
MEASURE_SHORT = "edge steepness"
#: images smaller than this on a side are too small to measure (``unsure``): their edges are too few
#: and too close to the border for the statistics
MIN_SIDE = 64
#: video: frames sampled, spread over the clip
VIDEO_SAMPLES = 8


def working_grey(img: np.ndarray, target: int = TARGET_PIXELS) -> np.ndarray:
    """(H, W[, C]) uint8/uint16/float -> the measure's grey copy: float32 in [0, 1] (alpha dropped),
    area-reduced to about ``target`` pixels (images already no larger are kept). The reduction
    comes first: exact halvings in the image's own type while it is over four times the target
    (cheap), then one area resize in float32."""
    import cv2

    white = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    x = img
    if x.ndim == 3:
        x = x[..., :3] if x.shape[2] >= 3 else x[..., :1]
    if x.dtype not in (np.uint8, np.uint16, np.float32):
        x = x.astype(np.float32)
    while x.shape[0] * x.shape[1] > 4 * target:
        h2, w2 = x.shape[0] // 2, x.shape[1] // 2
        x = cv2.resize(np.ascontiguousarray(x[: 2 * h2, : 2 * w2]), (w2, h2), interpolation=cv2.INTER_AREA)
        x = x[..., None] if img.ndim == 3 and x.ndim == 2 else x
    x = np.asarray(x, dtype=np.float32)
    h, w = x.shape[:2]
    if h * w > target * 1.05:
        f = (target / (h * w)) ** 0.5
        x = cv2.resize(x, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    if x.ndim == 3:
        x = x.mean(axis=2) if x.shape[2] == 3 else x[..., 0]
    return np.ascontiguousarray(x, dtype=np.float32) * np.float32(1 / white)


def _line(step: tuple[int, int], span: int) -> np.ndarray:
    dy, dx = step
    k = np.zeros((span, span), np.uint8)
    c = span // 2
    for t in range(-c, c + 1):
        k[c + t * dy, c + t * dx] = 1
    return k


def edge_steepness(grey: np.ndarray) -> np.ndarray | None:
    """Per direction (rows) the :data:`PERCENTILES` (columns) of edge steepness; None when the
    image has too few edges to judge."""
    import cv2

    m = 8  # margin: the range window's half-span
    h, w = grey.shape
    if h <= 2 * m + 2 or w <= 2 * m + 2:
        return None
    out = np.empty((len(DIRECTIONS), len(PERCENTILES)))
    for i, (dy, dx) in enumerate(DIRECTIONS):
        se = _line((dy, dx), RANGE_SPAN[dy == 0 or dx == 0])
        rng = cv2.subtract(cv2.dilate(grey, se), cv2.erode(grey, se))[m:-m, m:-m]
        step = cv2.absdiff(grey[m + dy : h - m + dy, m + dx : w - m + dx], grey[m:-m, m:-m])
        rng, step = rng[::STATS_STRIDE, ::STATS_STRIDE], step[::STATS_STRIDE, ::STATS_STRIDE]
        sample = rng.ravel()
        k = int(len(sample) * (1 - EDGE_SHARE))
        cut = max(float(np.partition(sample, k)[k]), MIN_EDGE_RANGE)
        edges = rng >= cut
        n = int(np.count_nonzero(edges))
        if n < MIN_EDGES:
            return None
        s = step[edges] / rng[edges]
        ranks = [min(n - 1, int(round(p / 100 * (n - 1)))) for p in PERCENTILES]
        out[i] = np.partition(s, ranks)[ranks]
    return out


def features(grey: np.ndarray) -> np.ndarray | None:
    """The model's inputs for a grey image at the working scale (see :data:`WEIGHTS`); None when
    there is nothing to judge."""
    import cv2

    a = edge_steepness(grey)
    h, w = grey.shape
    b = edge_steepness(cv2.resize(grey, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA))
    if a is None or b is None:
        return None
    steep = np.log(np.concatenate([a.min(axis=0), a.mean(axis=0), b.min(axis=0)]) + 1e-3)
    # motion blur along one axis leaves the edges across it sharp (bricks, a page's lines): the
    # steepest direction against the shallowest tells it, where the means do not
    spread = np.log((a.min(axis=0) + 1e-3) / (a.max(axis=0) + 1e-3))
    return np.concatenate([steep, spread])


def score_of(feats: np.ndarray | None, weights=WEIGHTS, bias: float = BIAS) -> float:
    """The calibrated blur score of :func:`features`; :data:`THRESHOLD` (so ``unsure``) when there is
    nothing to judge: too small, or too few edges."""
    if feats is None:
        return THRESHOLD
    z = float(np.dot(feats, weights) + bias)
    return float(1 / (1 + np.exp(-np.clip(z, -50, 50))))


def blur_score(img: np.ndarray) -> float:
    """The blur score of an image array: 0 sharp to 1 blurred (see the module docstring); an image
    smaller than :data:`MIN_SIDE` on a side cannot be measured: :data:`THRESHOLD` (``unsure``)."""
    if min(img.shape[:2]) < MIN_SIDE:
        return THRESHOLD
    return score_of(features(working_grey(img)))


def file_score(frames: list[np.ndarray]) -> float:
    """A file's blur score: that of its blurriest page or frame (one blurred page means the file is
    blurred). ``algnet triage`` and ``deblur --skip-sharp`` both judge a file by this, on the same
    decoded pixels."""
    return max(blur_score(f) for f in frames)


def judge(
    score: float, threshold: float = THRESHOLD, band: float = UNSURE_BAND, sharp_margin: float | None = None
) -> str:
    """``blurred`` above ``threshold + band``, ``sharp`` below ``threshold - sharp_margin`` (by default
    :data:`SHARP_MARGIN` at the calibrated threshold, ``band`` at another one), else ``unsure``."""
    if sharp_margin is None:
        sharp_margin = SHARP_MARGIN if threshold == THRESHOLD else band
    if score > threshold + band:
        return "blurred"
    if score < threshold - sharp_margin:
        return "sharp"
    return "unsure"


def detail_map(grey: np.ndarray, win: int) -> np.ndarray:
    """Per pixel, the detail in every direction of the ``win`` x ``win`` window centred there: the
    mean squared second difference, the smaller of the horizontal and vertical ones (so a lone
    horizon does not count as detail)."""
    import cv2

    dxx = cv2.Sobel(grey, cv2.CV_32F, 2, 0, ksize=1)
    dyy = cv2.Sobel(grey, cv2.CV_32F, 0, 2, ksize=1)
    box = lambda a: cv2.boxFilter(a * a, -1, (win, win), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    return np.minimum(box(dxx), box(dyy))


def most_detailed_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window with the most detail in every direction (see
    :func:`detail_map`). The whole image when it is no larger."""
    h, w = img.shape[:2]
    if h <= size and w <= size:
        return 0, 0
    g = working_grey(img, target=h * w)
    f = max(1, int(max(h, w) // 1024))  # judged on a copy of at most about 1024 px
    small = g[::f, ::f] if f > 1 else g
    win = max(3, size // f)
    detail = detail_map(small, win)
    sh, sw = small.shape
    half = win // 2
    inner = detail[half : max(half + 1, sh - (win - half) + 1), half : max(half + 1, sw - (win - half) + 1)]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return min(max(0, y * f), max(0, h - size)), min(max(0, x * f), max(0, w - size))


def relative_verdicts(scores: list[float], percent: float) -> list[str]:
    """The blurriest ``percent`` of ``scores`` blurred, the rest sharp (``--relative``)."""
    n = int(round(len(scores) * percent / 100.0))
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    blurred = set(order[:n])
    return ["blurred" if i in blurred else "sharp" for i in range(len(scores))]
