"""Reading and writing images: round trips by format and depth, headers, orientation, the decoding limit."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from algnet_cli.errors import ImageReadError
from algnet_cli.images import (
    ImageDescription,
    check_header,
    open_image,
    probe_image,
    read_image,
    read_metadata,
    save_image,
    write_image,
)

RGB = data.astronaut()[100:140, 150:206]  # 40 x 56


@pytest.mark.parametrize(
    "name, img",
    [
        ("a.png", RGB),
        ("a16.png", RGB.astype(np.uint16) * 257 + 3),
        ("grey.png", RGB[..., 1]),
        ("rgba.png", np.dstack([RGB, RGB[..., 0]])),
        ("a.tif", RGB.astype(np.uint16) * 250),
        ("f.tif", RGB.astype(np.float32) / 255),
        ("a.bmp", RGB),
        ("q100.webp", RGB),
    ],
)
def test_formats_round_trip_exactly_or_lossy_close(tmp_path, name, img):
    path = tmp_path / name
    write_image(path, img, quality=100)
    back = read_image(path)
    assert back.dtype == img.dtype and back.shape == img.shape
    if name.endswith(".webp"):  # lossy WebP, at its best quality
        assert np.abs(back.astype(int) - img.astype(int)).mean() < 3
    else:
        assert np.array_equal(back, img)


def test_jpeg_is_eight_bit_and_close(tmp_path):
    write_image(tmp_path / "a.jpg", RGB.astype(np.uint16) * 257, quality=95)
    back = read_image(tmp_path / "a.jpg")
    assert back.dtype == np.uint8 and np.abs(back.astype(int) - RGB.astype(int)).mean() < 4


def test_exif_orientation_is_applied_on_reading(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(RGB).save(tmp_path / "o.jpg", exif=exif, quality=100)
    back = read_image(tmp_path / "o.jpg")
    assert back.shape == (RGB.shape[1], RGB.shape[0], 3)
    assert np.abs(back.astype(int) - np.rot90(RGB, -1).astype(int)).mean() < 3


def test_the_header_is_read_without_decoding_and_the_limit_applies(tmp_path):
    write_image(tmp_path / "a.png", RGB)
    header = probe_image(tmp_path / "a.png")
    assert (header.width, header.height, header.frames) == (56, 40, 1)
    check_header(tmp_path / "a.png", header, max_pixels=56 * 40)
    with pytest.raises(ImageReadError, match="megapixel|pixels"):
        check_header(tmp_path / "a.png", header, max_pixels=56 * 40 - 1)
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "a.png", max_pixels=100)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.png")


def test_animations_keep_every_frame_their_durations_and_loop(tmp_path):
    frames = [np.roll(RGB, 8 * i, axis=1) for i in range(3)]
    how = ImageDescription("gif", frames=3, frames_kind="frames", durations=(80, 120, 200), loop=2)
    notes = save_image(tmp_path / "a.gif", frames, how)
    assert any("quantised" in n for n in notes)  # the astronaut has more colours than a GIF holds
    back = open_image(tmp_path / "a.gif")
    assert len(back.frames) == 3 and back.description.durations == (80, 120, 200) and back.description.loop == 2
    assert probe_image(tmp_path / "a.gif").frames == 3


def test_metadata_travels_from_input_to_output(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "AcmeCam"  # Make
    Image.fromarray(RGB).save(tmp_path / "in.jpg", exif=exif)
    write_image(tmp_path / "out.jpg", RGB, meta=read_metadata(tmp_path / "in.jpg"))
    assert Image.open(tmp_path / "out.jpg").getexif()[0x010F] == "AcmeCam"
