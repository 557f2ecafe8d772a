"""Pixels, page by page: each page, frame and sample kind read as the file means it, checked with
an independent reader (tifffile, Pillow)."""

from __future__ import annotations

import numpy as np
import tifffile

from algnet_cli.batch.plan import Job
from algnet_cli.batch.stills import load_image, save_image

RNG = np.random.default_rng(3)


def roundtrip(src, dst):
    job = Job(src, dst)
    dec = load_image(job)
    frames = dec.opened.frames
    return dec, dec.notes + save_image(job, frames if len(frames) > 1 else frames[0], dec)


def test_every_tiff_page_is_turned_upright_by_its_own_orientation(tmp_path):
    pages = [RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8) for _ in range(3)]
    src = tmp_path / "p.tif"
    with tifffile.TiffWriter(src) as tw:
        for page, orientation in zip(pages, (1, 3, 6)):
            tw.write(page, photometric="rgb", extratags=[(274, 3, 1, orientation, True)], metadata=None)
    dec, _ = roundtrip(src, tmp_path / "out" / "p.tif")
    upright = [pages[0], pages[1][::-1, ::-1], np.swapaxes(pages[2], 0, 1)[:, ::-1]]
    for got, want in zip(dec.opened.frames, upright):
        assert np.array_equal(got, want)
    with tifffile.TiffFile(tmp_path / "out" / "p.tif") as tf:
        assert len(tf.pages) == 3
        for page, want in zip(tf.pages, upright):
            assert np.array_equal(page.asarray(), want)
            assert 274 not in page.tags or page.tags[274].value == 1
