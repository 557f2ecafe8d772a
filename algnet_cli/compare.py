"""Comparison sheets: images side by side, plus a zoom on where two of them differ most."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fileio import atomic_write


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any image array -> H x W x 3 uint8 for display."""
    from .images import to_8bit

    img = to_8bit(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] in (2, 4):
        img = img[..., :-1]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img


def most_different_window(a: np.ndarray, b: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the size x size window where a and b differ most (mean abs difference)."""
    import cv2

    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    h, w = diff.shape
    size = min(size, h, w)
    box = cv2.boxFilter(diff, -1, (size, size), normalize=True, borderType=cv2.BORDER_CONSTANT)
    # a window centred at (cy, cx) must lie inside the image
    half = size // 2
    inner = box[half : h - (size - half) + 1, half : w - (size - half) + 1]
    cy, cx = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(cy), int(cx)


def write_sheet(path: Path, panels: list[tuple[str, np.ndarray]], focus: tuple[int, int]) -> None:
    """Write a PNG: the panels side by side (labelled), and below them a magnified crop of each at
    the window where panels[focus[0]] and panels[focus[1]] differ most."""
    import cv2

    imgs = [to_rgb8(p) for _, p in panels]
    h, w = imgs[0].shape[:2]
    size = max(16, min(h, w) // 6)
    y, x = most_different_window(imgs[focus[0]], imgs[focus[1]], size)
    size = min(size, h, w)
    scale = min(1.0, 2400 / (w * len(imgs)))
    tops, crops = [], []
    for (label, _), im in zip(panels, imgs):
        small = (
            cv2.resize(im, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
            if scale < 1
            else im.copy()
        )
        s = scale
        cv2.rectangle(small, (int(x * s), int(y * s)), (int((x + size) * s), int((y + size) * s)), (255, 0, 0), 2)
        cv2.putText(small, label, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(small, label, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        tops.append(small)
        crop = im[y : y + size, x : x + size]
        side = small.shape[1]
        crops.append(
            cv2.resize(crop, (side, side * crop.shape[0] // max(1, crop.shape[1])), interpolation=cv2.INTER_NEAREST)
        )
    save_sheet(path, np.vstack([np.hstack(tops), np.hstack(crops)]))


def save_sheet(path: Path, rgb: np.ndarray) -> None:
    """Write a sheet (H x W x 3 uint8 RGB) atomically. A PNG carries the text chunk
    ``Software: algnet-cli``, by which a later run knows the file as its own and may replace it;
    other formats go through the image writer."""
    from .outputs import SOFTWARE

    if Path(path).suffix.lower() != ".png":
        from .images import write_image

        write_image(path, rgb)
        return
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SOFTWARE)
    im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    atomic_write(path, lambda p: im.save(p, format="PNG", pnginfo=info, compress_level=4))
