"""What a video carries besides its frames, kept or named: each class goes through an identity model and
the two files are compared field by field, as ffprobe shows them (read here through the same libavformat,
with PyAV): colour tags, pixel shape, field order, HDR10 side data, alpha, streams and their languages,
chapters, start times. Every difference must be named in the video's record, or the test fails."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from helpers.videos import frame_pixels, make_video

from algnet_cli.video import EncodeOptions, process_sequence, process_video
from algnet_cli.video.colour import mastering_of


def identity(frame):
    return frame


def _photo_frames(n: int, w: int, h: int) -> list[np.ndarray]:
    """Natural-looking colour frames, panned: smooth fields of saturated colour with fine texture, so
    that colour conversions are measured on content with real chroma (the examples are near grey)."""
    import cv2

    rng = np.random.default_rng(5)
    field = cv2.resize(rng.uniform(20, 235, (8, 10, 3)), (w + 2 * n, h + n), interpolation=cv2.INTER_CUBIC)
    field += rng.normal(0, 6, field.shape[:2])[..., None]
    img = np.clip(field, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(img[i : i + h, 2 * i : 2 * i + w]) for i in range(n)]


def encode_clip(path, *, codec="libx264", pix_fmt="yuv420p", n=6, w=96, h=64, colour=(), options=None, tags=None,
                audio_languages=(), chapters=(), container_options=None, frames=None, alpha=False, rate=25):  # fmt: skip
    """A clip with the given colour fields (matrix, range, primaries, transfer), encoder options, stream
    tags, audio tracks (one per language) and chapters."""
    c = av.open(str(path), "w", options=container_options or {})
    s = c.add_stream(codec, rate=rate, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    names = ("colorspace", "color_range", "color_primaries", "color_trc")
    for name, value in zip(names, colour):
        setattr(s.codec_context, name, value)
    for k, v in (tags or {}).items():
        s.metadata[k] = v
    audios = []
    for lang in audio_languages:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        a.metadata["language"] = lang
        audios.append(a)
    if chapters:
        c.set_chapters(list(chapters))
    frames = frames or [frame_pixels(i, w, h) for i in range(n)]
    deep = pix_fmt.endswith(("10le", "12le"))
    for i, img in enumerate(frames):
        if alpha:
            img = np.dstack([img, np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))])
        fmt = "rgba" if alpha else "rgb24"
        if deep:
            img, fmt = img.astype(np.uint16) * 257, "rgb48le"
        f = av.VideoFrame.from_ndarray(img, format=fmt)
        kwargs = {}
        if colour and colour[0] in (1, 5, 6, 9):
            kwargs["dst_colorspace"] = {6: 5}.get(colour[0], colour[0])
        if len(colour) > 1 and colour[1]:
            kwargs["dst_color_range"] = colour[1]
        f = f.reformat(format=pix_fmt, **kwargs)
        for name, value in zip(names, colour):
            setattr(f, name, value)
        f.pts = i
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    for a in audios:
        for t in range(0, int(48000 * len(frames) / rate), 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    c.close()
    return path


def _decoder(stream):
    if stream.codec_context.name == "vp9" and stream.metadata.get("alpha_mode") == "1":
        return av.CodecContext.create("libvpx-vp9", "r")  # FFmpeg's own vp9 decoder drops the alpha
    return None


def probe_view(path) -> dict:
    """What ffprobe reports of a file that this tool must keep: per class, a comparable value."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        decoder = _decoder(v)
        first = None
        for p in c.demux(v):
            got = decoder.decode(p) if decoder else p.decode()
            if got:
                first = got[0]
                break
        start = c.start_time / 1e6 if c.start_time else 0.0
        yuv = not first.format.is_rgb if first is not None else True
        return {
            # an unspecified range of YUV video means limited, as every player reads it (VP9 cannot say unspecified)
            "colour": (cc.colorspace, cc.color_range or (1 if yuv else 0), cc.color_primaries, cc.color_trc),
            "pixel shape": cc.sample_aspect_ratio or Fraction(1),
            "field order": {2: "tt", 3: "bb", 4: "tb", 5: "bt"}.get(cc.field_order, "progressive"),
            "HDR10": mastering_of(first),
            "alpha": first is not None and any(comp.is_alpha for comp in first.format.components),
            "streams": [(s.type, s.language or "und") for s in c.streams if s.type in ("video", "audio", "subtitle")],
            "chapters": [(ch["metadata"].get("title"), round(float(ch["start"] * ch["time_base"]), 3)) for ch in c.chapters()],
            "start": round(start, 1),
        }  # fmt: skip


#: the word a record's note must use for a difference in each class
NOTE_WORDS = {"colour": "colour", "pixel shape": "pixel shape", "field order": "interlaced", "HDR10": "HDR10",
              "alpha": "alpha", "streams": "audio", "chapters": "chapters", "start": "start"}  # fmt: skip


def differences(src, dst, report) -> dict:
    """Each field that differs between the two files, and whether a note in the report names it."""
    a, b = probe_view(src), probe_view(dst)
    notes = " ".join(report.streams + report.problems)
    return {k: (a[k], b[k], NOTE_WORDS[k] in notes) for k in a if a[k] != b[k]}


def unexplained(src, dst, report) -> dict:
    return {k: v for k, v in differences(src, dst, report).items() if not v[2]}


def _planes(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([np.concatenate([np.frombuffer(p, np.uint8) for p in f.planes]) for f in c.decode(video=0)])


@pytest.mark.parametrize(
    "colour",
    [(1, 1, 1, 1), (1, 2, 1, 1), (6, 1, 6, 6), (9, 1, 9, 14), (5, 2, 5, 6)],
    ids=["bt709", "bt709-full-range", "bt601-ntsc", "bt2020", "bt601-pal-full-range"],
)
def test_colour_matrix_range_primaries_and_transfer_are_kept(tmp_path, colour):
    """The input's four colour fields come back, and its YUV values nearly unchanged: converted to RGB
    and back with its own matrix and range (a BT.709 clip came back as untagged BT.601, 9 levels off on
    average; a full-range one squeezed into limited range)."""
    src = encode_clip(tmp_path / "in.mkv", codec="ffv1", colour=colour, frames=_photo_frames(4, 96, 64))
    dst = tmp_path / "out.mkv"
    report = process_video(src, dst, identity, EncodeOptions(codec="ffv1"))
    assert probe_view(dst)["colour"] == colour
    assert unexplained(src, dst, report) == {}
    diff = np.abs(_planes(src).astype(int) - _planes(dst))
    assert diff.mean() < 0.3 and np.percentile(diff, 99.9) <= 3, (diff.mean(), diff.max())


def test_an_untagged_clip_stays_untagged_and_round_trips_closely(tmp_path):
    src = encode_clip(tmp_path / "in.mkv", codec="ffv1", frames=_photo_frames(4, 96, 64))
    dst = tmp_path / "out.mkv"
    report = process_video(src, dst, identity, EncodeOptions(codec="ffv1"))
    assert probe_view(dst)["colour"] == (2, 1, 2, 2) and unexplained(src, dst, report) == {}
    diff = np.abs(_planes(src).astype(int) - _planes(dst))
    assert diff.mean() < 0.3 and np.percentile(diff, 99.9) <= 3, (diff.mean(), diff.max())


def test_frames_from_images_are_tagged_as_srgb(tmp_path):
    from algnet_cli.images import write_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(_photo_frames(3, 64, 48)):
        write_image(folder / f"f{i:03d}.png", img)
    process_sequence(sorted(folder.glob("*.png")), tmp_path / "out.mp4", identity)
    assert probe_view(tmp_path / "out.mp4")["colour"] == (1, 1, 1, 13)


HDR10 = "hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400"


def test_hdr10_keeps_its_transfer_primaries_and_mastering_metadata(tmp_path):
    """A BT.2020/PQ HEVC with mastering-display and content-light metadata comes back as such (auto picks
    H.265, which carries them); forced into H.264 the metadata loss is named."""
    src = encode_clip(
        tmp_path / "hdr.mp4", codec="libx265", pix_fmt="yuv420p10le", colour=(9, 1, 9, 16),
        options={"x265-params": "log-level=error:" + HDR10},
    )  # fmt: skip
    dst = tmp_path / "out" / "hdr.mp4"
    report = process_video(src, dst, identity)
    view = probe_view(dst)
    assert view["colour"] == (9, 1, 9, 16) and view["HDR10"] == probe_view(src)["HDR10"] is not None
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p10le"
    assert unexplained(src, dst, report) == {}
    forced = tmp_path / "h264" / "hdr.mkv"
    report = process_video(src, forced, identity, EncodeOptions(codec="h264"))
    d = differences(src, forced, report)
    assert "HDR10" in d and d["HDR10"][2], d  # lost, and named
    assert probe_view(forced)["colour"] == (9, 1, 9, 16)
    assert unexplained(src, forced, report) == {}


def test_pixel_shape_is_kept_or_named(tmp_path):
    src = tmp_path / "sar.mp4"
    make_video(src, 64, 48, [i * 40 for i in range(6)], sar=Fraction(4, 3), audio=None)
    for name in ("out.mkv", "out.mov", "out.webm"):
        report = process_video(src, tmp_path / name, identity)
        assert unexplained(src, tmp_path / name, report) == {}, name
    assert probe_view(tmp_path / "out.mkv")["pixel shape"] == Fraction(4, 3)


def test_alpha_is_kept_in_webm_and_mkv_and_named_where_it_cannot_be(tmp_path):
    src = encode_clip(
        tmp_path / "a.webm", codec="libvpx-vp9", pix_fmt="yuva420p", alpha=True, options={"b": "0", "crf": "10"}
    )
    dst = tmp_path / "o" / "a.webm"
    report = process_video(src, dst, identity)
    assert probe_view(dst)["alpha"] and unexplained(src, dst, report) == {}
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        alphas = []
        for c in (a, b):
            dec = _decoder(c.streams.video[0])
            alphas.append(
                [f.to_ndarray(format="rgba")[..., 3] for p in c.demux(c.streams.video[0]) for f in dec.decode(p)]
            )
        assert len(alphas[0]) == len(alphas[1])
        assert max(np.abs(x.astype(int) - y).max() for x, y in zip(*alphas)) <= 3
    mkv = tmp_path / "o" / "a.mkv"  # the default codec there is VP9 for a source with alpha: Matroska keeps it
    report = process_video(src, mkv, identity)
    assert probe_view(mkv)["alpha"] and unexplained(src, mkv, report) == {}
    mp4 = tmp_path / "o" / "a.mp4"
    report = process_video(src, mp4, identity)
    assert differences(src, mp4, report)["alpha"][2]


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_field_order_is_kept_in_h264_and_named_elsewhere(tmp_path, order):
    src = encode_clip(tmp_path / "i.mkv", options={"flags": "+ildct+ilme", "x264-params": f"{order}=1"})
    assert probe_view(src)["field order"] == {"tff": "tt", "bff": "bb"}[order]
    dst = tmp_path / "o" / "i.mkv"
    report = process_video(src, dst, identity)
    assert probe_view(dst)["field order"] == probe_view(src)["field order"] and unexplained(src, dst, report) == {}
    webm = tmp_path / "o" / "i.webm"
    report = process_video(src, webm, identity)
    assert differences(src, webm, report)["field order"][2]


def test_languages_titles_and_chapters_are_kept(tmp_path):
    chapters = [
        {"id": 1, "start": 0, "end": 100, "time_base": Fraction(1, 1000), "metadata": {"title": "Opening"}},
        {"id": 2, "start": 100, "end": 240, "time_base": Fraction(1, 1000), "metadata": {"title": "End"}},
    ]
    src = encode_clip(tmp_path / "t.mkv", audio_languages=("eng", "fra"), chapters=chapters, tags={"title": "Main"})
    for name in ("t.mkv", "t.mp4"):
        dst = tmp_path / "o" / name
        report = process_video(src, dst, identity)
        view = probe_view(dst)
        assert [s for s in view["streams"] if s[0] == "audio"] == [("audio", "eng"), ("audio", "fra")]
        assert view["chapters"] == [("Opening", 0.0), ("End", 0.1)]
        assert unexplained(src, dst, report) == {}, name
    with av.open(str(tmp_path / "o" / "t.mkv")) as c:
        assert c.streams.video[0].metadata.get("title") == "Main"


@pytest.mark.parametrize("name", ["o.mov", "o.mp4", "o.mkv"])
def test_every_language_a_container_can_hold_is_kept_and_the_others_are_named(tmp_path, name):
    """ISO 639-2 names 20 languages twice (ger/deu, fre/fra, cze/ces): MOV stores a language as a
    Macintosh code, found by one form or the other, so a track tagged with the other form came back
    "und". Each language comes back (in either form), or a note names it: Cantonese has no
    Macintosh code."""
    from algnet_cli.video.containers import same_language

    languages = ("eng", "fra", "deu", "cze", "nld", "yue")
    src = encode_clip(tmp_path / "t.mkv", audio_languages=languages)
    dst = tmp_path / name
    report = process_video(src, dst, identity)
    with av.open(str(dst)) as c:
        found = [s.metadata.get("language") for s in c.streams.audio]
    notes = [s for s in report.streams if "language" in s]
    for i, (language, got) in enumerate(zip(languages, found, strict=True)):
        said = [s for s in notes if s.startswith(f"audio #{i + 1}: language {language} not kept")]
        assert same_language(got, language) != bool(said), (language, got, notes)
    kept = [same_language(a, b) for a, b in zip(languages, found)]
    assert kept == [True] * 5 + [name != "o.mov"], (found, notes)


def test_a_transport_stream_clock_far_from_zero_starts_the_output_at_zero(tmp_path):
    """A TS whose clock starts at 36,001 s is not written with 10 empty hours first; audio keeps its
    offset to the video."""
    src = tmp_path / "late.ts"
    start = 36001
    make_video(src, 64, 48, [start * 25 + i for i in range(12)], time_base=Fraction(1, 25),
               container_format="mpegts", audio_start=start + 0.2)  # fmt: skip
    dst = tmp_path / "o" / "late.mp4"
    process_video(src, dst, identity)

    def firsts(path):
        with av.open(str(path)) as c:
            return {s.type: float(s.start_time * s.time_base) for s in c.streams}

    a, b = firsts(src), firsts(dst)
    assert b["video"] < 1.0, b
    assert abs((a["audio"] - a["video"]) - (b["audio"] - b["video"])) < 0.03, (a, b)
    with av.open(str(dst)) as c:
        assert c.duration / 1e6 < 2.0


@pytest.mark.parametrize("name", ["o.mov", "o.mp4"])
def test_a_mov_with_a_600_timescale_keeps_every_frame_and_audio_time(tmp_path, name):
    """A phone's MOV counts time in 1/600 s: at 30000/1001 fps a frame is not a whole number of ticks,
    and the output must show each frame, and start the audio, at exactly the source's times."""
    src = encode_clip(tmp_path / "in.mov", n=15, rate=Fraction(30000, 1001), audio_languages=("eng",),
                      container_options={"video_track_timescale": "600"})  # fmt: skip

    def times(path):
        with av.open(str(path)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            shown = sorted(p.pts * p.time_base for p in c.demux(v) if p.size)
            return shown, a.start_time * a.time_base

    with av.open(str(src)) as c:
        assert c.streams.video[0].time_base == Fraction(1, 600)
    dst = tmp_path / name
    report = process_video(src, dst, identity)
    (a, a_audio), (b, b_audio) = times(src), times(dst)
    assert len(a) == len(b) == 15 and all(abs(x - y) < Fraction(1, 100_000) for x, y in zip(a, b)), (a, b)
    assert abs(a_audio - b_audio) < Fraction(1, 100_000) and unexplained(src, dst, report) == {}


@pytest.mark.parametrize(("name", "start", "rate"), [("o.mov", 13, 24), ("o.mp4", 7, Fraction(30000, 1001))])
def test_a_video_that_starts_after_its_audio_keeps_every_frame_time_in_mp4_and_mov(tmp_path, name, start, rate):
    """A QuickTime video whose track starts after its audio (an empty edit): the output's frames are
    shown at the source's times exactly, not rounded down to the millisecond of the movie's time scale."""
    src = tmp_path / "in.mov"
    pts = [start + round(i * 600 / Fraction(rate)) for i in range(12)]
    make_video(src, 64, 48, pts, time_base=Fraction(1, 600), rate=rate, container_format="mov", options={"bf": "2"})

    def frame_times(path):
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            return [f.pts * f.time_base for f in c.decode(v)]

    a = frame_times(src)
    assert a[0] > 0.005  # the source starts after its audio (as the container reads it)
    dst = tmp_path / name
    process_video(src, dst, identity)
    assert frame_times(dst) == a


def test_copied_audio_that_starts_before_zero_says_how_much_later_matroska_starts_every_stream(tmp_path):
    """AAC from an MP4 starts with its encoder delay before time 0; Matroska holds no times before 0, so
    its muxer starts every stream that much later (in sync): the difference is named, with its size."""
    import re

    src = tmp_path / "in.mp4"
    make_video(src, 64, 48, [i * 40 for i in range(10)], time_base=Fraction(1, 1000), audio="aac")
    dst = tmp_path / "o.mkv"
    report = process_video(src, dst, identity)
    (said,) = [s for s in report.streams if "holds no times before 0" in s]
    ms = float(re.search(r"starts ([\d.]+) ms later, in sync", said).group(1))
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        shift = [
            float(y.pts * y.time_base - x.pts * x.time_base) * 1000
            for x, y in zip(a.decode(video=0), b.decode(video=0))
        ]
    assert ms > 5 and all(abs(d - ms) <= 1 for d in shift), (ms, shift)  # Matroska counts milliseconds
    assert not any("holds no times" in s for s in process_video(src, tmp_path / "o.mp4", identity).streams)


@pytest.mark.parametrize(
    ("suffix", "fmt", "codec"),
    [(".ts", "mpegts", "libx264"), (".m2ts", "mpegts", "libx264"), (".mpg", "mpeg", "mpeg2video")],
)
@pytest.mark.parametrize("forced", [None, "h264"])
def test_transport_and_program_streams_work_with_the_defaults_and_with_h264(tmp_path, suffix, fmt, codec, forced):
    src = tmp_path / f"c{suffix}"
    make_video(src, 64, 48, list(range(12)), time_base=Fraction(1, 25), container_format=fmt, codec=codec,
               audio="aac" if fmt == "mpegts" else "mp2")  # fmt: skip
    dst = tmp_path / "o" / src.name
    options = EncodeOptions(codec=forced) if forced else EncodeOptions()
    report = process_video(src, dst, identity, options)
    assert report.frames == 12 and report.status == "done", report.to_dict()
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert sum(1 for _ in c.decode(video=0)) == 12
    if not forced:
        with av.open(str(src)) as a, av.open(str(dst)) as b:
            pa = [float(f.pts * f.time_base) for f in a.decode(video=0)]
            pb = [float(f.pts * f.time_base) for f in b.decode(video=0)]
        assert np.allclose(np.diff(pa), np.diff(pb), atol=1e-3)


class _StopAfter:
    """An identity model that is interrupted (as by Ctrl-C) once ``n`` frames have been through it."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, frame):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return frame


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_an_interrupted_video_says_partial_in_its_header_and_keeps_what_it_carries(tmp_path, suffix):
    """The partial tag is in the container's own tags whatever the container (Matroska writes its tags in
    the header, before any frame), and the partial file keeps rotation, languages and chapters."""
    from algnet_cli.video import partial_path
    from algnet_cli.video.process import VideoInterrupted

    chapters = [{"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "A"}}]
    src = encode_clip(tmp_path / "in.mkv", n=40, audio_languages=("fra",), chapters=chapters)
    dst = tmp_path / "o" / f"clip{suffix}"
    with pytest.raises(VideoInterrupted) as stopped:
        process_video(src, dst, _StopAfter(12))
    report = stopped.value.report
    partial = partial_path(dst)
    assert report.status == "partial" and report.output == str(partial) and not dst.exists()
    with av.open(str(partial)) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}  # Matroska's are upper case
        assert tags.get("comment", "").startswith("partial"), tags
        assert 10 <= sum(1 for _ in c.decode(video=0)) <= 12
    view = probe_view(partial)
    assert ("audio", "fra") in view["streams"] and view["chapters"] == [("A", 0.0)]
    assert [p.name for p in partial.parent.iterdir()] == [partial.name]  # no temporary left
