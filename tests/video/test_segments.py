"""A video in keyframe segments, encoded apart and joined, gives every frame and timestamp of a whole run."""

from fractions import Fraction

import av
import numpy as np
import pytest
from helpers.videos import decoded_frames, make_video, stream_packets

from algnet_cli.errors import VideoError
from algnet_cli.video import EncodeOptions, VideoReport, probe, process_video
from algnet_cli.video.segments import Segment, encode_segment, index_segments, join_segments, segment_done


def invert(frame):
    return 255 - frame


@pytest.mark.parametrize(
    "name, options",
    [
        ("bframes_vfr.mp4", {"g": "6", "keyint_min": "6", "bf": "3", "sc_threshold": "0"}),
        ("open_gop.mkv", {"g": "6", "keyint_min": "6", "bf": "3", "sc_threshold": "0", "x264-params": "open-gop=1"}),
    ],
)
def test_segments_joined_equal_a_whole_run(tmp_path, name, options):
    src = tmp_path / name
    pts = [i * 40 + (17 if i % 4 == 0 else 0) for i in range(26)]  # a variable frame rate
    make_video(src, 48, 32, pts, time_base=Fraction(1, 1000), rotation=90, audio="aac", options=options)
    segments = index_segments(src, 4)
    assert len(segments) >= 3 and sum(s.frames for s in segments) == 26
    lossless = EncodeOptions(codec="ffv1")
    parts = []
    for s in segments:
        part = tmp_path / f"part{s.index}.nut"
        assert (
            len(encode_segment(src, s, part, invert, lossless, joined_into=tmp_path / f"joined{src.suffix}"))
            == s.frames
        )
        parts.append(part)
    report = VideoReport(str(src), "")
    join_segments(src, parts, tmp_path / f"joined{src.suffix}", report)
    process_video(src, tmp_path / f"whole{src.suffix}", invert, lossless)
    joined, whole = probe(tmp_path / f"joined{src.suffix}"), probe(tmp_path / f"whole{src.suffix}")
    assert joined["pts"] == whole["pts"] and joined["frames"] == report.frames == 26
    assert joined["rotation"] == whole["rotation"] == 90
    a, b = decoded_frames(tmp_path / f"joined{src.suffix}"), decoded_frames(tmp_path / f"whole{src.suffix}")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert stream_packets(tmp_path / f"joined{src.suffix}")[1:] == stream_packets(tmp_path / f"whole{src.suffix}")[1:]


def test_a_video_with_one_keyframe_is_not_cut(tmp_path):
    src = tmp_path / "one_gop.mp4"
    make_video(src, 32, 32, list(range(0, 400, 40)), options={"g": "250"}, audio=None)
    assert index_segments(src, 4) == []


def test_a_segment_that_does_not_decode_as_indexed_is_refused(tmp_path):
    src = tmp_path / "v.mp4"
    make_video(src, 32, 32, list(range(0, 480, 40)), options={"g": "4", "keyint_min": "4"}, audio=None)
    first = index_segments(src, 3)[0]
    wrong = Segment(first.index, first.start, first.end, first.frames + 2)
    with pytest.raises(VideoError, match="frames decoded"):
        encode_segment(src, wrong, tmp_path / "part.nut", invert)
    assert not (tmp_path / "part.nut").exists() and not segment_done(tmp_path / "part.nut")


def _timing(path):
    """Sorted frame timestamps, the container's average frame rate, and the audio packets' timestamps."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts, rate = sorted(p.pts for p in c.demux(v) if p.size), v.average_rate
    with av.open(str(path)) as c:
        audio = [(p.pts, p.dts) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    return pts, rate, audio


def _join_and_whole(src, joined, whole) -> list:
    """``src`` cut into at most 10 segments at keyframes, each encoded and all joined into ``joined``;
    and the same video made in one run, into ``whole``. Returns the segments."""
    segments = index_segments(src, 10)
    parts = [joined.parent / f"{s.index:05d}.nut" for s in segments]
    for s, part in zip(segments, parts):
        encode_segment(src, s, part, invert, joined_into=joined)
    join_segments(src, parts, joined, VideoReport(str(src), ""))
    process_video(src, whole, invert)
    return segments


def _clip(path, rate, keyint, bframes):
    """Nine and a half keyframe intervals at ``rate`` ("vfr": jittered), AAC beside them."""
    n = 9 * keyint + keyint // 2
    if rate == "vfr":
        tb, fps = Fraction(1, 1000), 25
        pts = [i * 40 + (17 if i % 4 == 0 else 0) + (i // 30) * 9 for i in range(n)]
    else:
        fps = Fraction(rate)
        # each container's usual time base: Matroska counts milliseconds, MP4 a multiple of the rate
        tb = (
            Fraction(1, 1000)
            if path.suffix == ".mkv"
            else 1 / (fps * 512)
            if fps.denominator == 1
            else Fraction(1, fps.numerator)
        )
        pts = [int(i / fps / tb) for i in range(n)]
    options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0", "bf": "3" if bframes else "0"}
    make_video(path, 64, 48, pts, time_base=tb, rate=fps, audio="aac", options=options)


JOIN_FACTORS = {"suffix": [".mp4", ".mkv"], "rate": ["24", "25", "30000/1001", "vfr"], "keyint": [7, 10, 12, 25],
                "bframes": [False, True]}  # fmt: skip


def pairwise(factors: dict) -> list[tuple]:
    """Cases in which every pair of values of any two factors meets at least once: every rate with
    every keyframe interval, and each of those with both containers and with and without B-frames
    (16 cases instead of the 64 of the full product)."""
    suffixes, rates, keyints, bframes = factors.values()
    return [
        (suffixes[(r + k) % 2], rate, keyint, bframes[(r + k // 2) % 2])
        for r, rate in enumerate(rates)
        for k, keyint in enumerate(keyints)
    ]


def test_the_join_cases_cover_every_pair_of_values():
    import itertools

    cases, values = pairwise(JOIN_FACTORS), list(JOIN_FACTORS.values())
    for i, j in itertools.combinations(range(len(values)), 2):
        assert {(c[i], c[j]) for c in cases} == set(itertools.product(values[i], values[j])), (i, j)


@pytest.mark.parametrize(
    "suffix, rate, keyint, bframes",
    pairwise(JOIN_FACTORS),
    ids=[f"{s}-{r}-{k}-{'b-frames' if b else 'no-b'}" for s, r, k, b in pairwise(JOIN_FACTORS)],
)
def test_many_joins_keep_every_timestamp_of_a_whole_run(tmp_path, suffix, rate, keyint, bframes):
    """At least 8 joins in one video: no join moves a frame, the frame rate or an audio packet."""
    src, joined, whole = tmp_path / f"clip{suffix}", tmp_path / f"joined{suffix}", tmp_path / f"whole{suffix}"
    _clip(src, rate, keyint, bframes)
    segments = _join_and_whole(src, joined, whole)
    assert len(segments) >= 9
    (pts, rate_joined, audio), (pts_whole, rate_whole, audio_whole) = _timing(joined), _timing(whole)
    assert pts == pts_whole and len(pts) == len(_timing(src)[0])
    assert rate_joined == rate_whole
    assert audio == audio_whole and audio


def _segmented(tmp_path, suffix=".mp4"):
    src = tmp_path / f"clip{suffix}"
    make_video(src, 48, 32, [i * 40 for i in range(24)], options={"g": "6", "keyint_min": "6", "sc_threshold": "0"})
    dst = tmp_path / "out" / f"clip{suffix}"
    dst.parent.mkdir()
    parts = []
    for s in index_segments(src, 4):
        parts.append(tmp_path / f"{s.index:05d}.nut")
        encode_segment(src, s, parts[-1], invert, joined_into=dst)
    return src, dst, parts


def test_a_damaged_segment_fails_the_join_and_is_encoded_again_on_a_rerun(tmp_path):
    src, dst, parts = _segmented(tmp_path)
    data = parts[2].read_bytes()
    parts[2].write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"00002\.nut.*recorded; a rerun encodes this segment again"):
        join_segments(src, parts, dst, VideoReport(str(src), ""))
    assert list(dst.parent.iterdir()) == []  # no output, no temporary file
    assert [segment_done(p) for p in parts] == [True, True, False, True]


def test_a_muxer_that_refuses_a_packet_fails_the_video_not_the_run(tmp_path, monkeypatch):
    from algnet_cli.video import encode

    src, dst, parts = _segmented(tmp_path, ".mkv")
    calls = []

    def refuse(self, packet):
        calls.append(packet)
        if len(calls) == 9:
            raise av.error.ArgumentError(
                22, "Invalid argument", str(dst), (16, "matroska", "non monotonically increasing dts")
            )
        self.container.mux(packet)

    monkeypatch.setattr(encode.Sink, "video_packet", refuse)
    with pytest.raises(
        VideoError, match=r"clip\.mkv: joining its segments failed: Invalid argument \(matroska: non mono"
    ):
        join_segments(src, parts, dst, VideoReport(str(src), ""))
    assert list(dst.parent.iterdir()) == [] and all(segment_done(p) for p in parts)


def test_segments_for_a_webm_are_encoded_in_a_codec_webm_holds(tmp_path):
    """The default codec is made concrete against the joined file's container, not the segments'."""
    src = tmp_path / "clip.webm"
    make_video(src, 48, 32, [i * 40 for i in range(18)], codec="libvpx", audio="libopus", options={"g": "6"})
    dst = tmp_path / "out.webm"
    parts = []
    for s in index_segments(src, 3):
        parts.append(tmp_path / f"{s.index:05d}.nut")
        encode_segment(src, s, parts[-1], invert, joined_into=dst)
    join_segments(src, parts, dst, VideoReport(str(src), ""))
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    assert len(parts) >= 2 and _timing(dst)[0] == _timing(src)[0]


def test_a_codec_that_nut_cannot_hold_is_segmented_in_the_output_container(tmp_path):
    """ProRes has no NUT tag: its segments go into the joined file's container (MOV), and the timestamps
    kept beside them still make the join equal a whole run."""
    src = tmp_path / "clip.mov"
    pts = [i * 512 for i in range(15)]
    make_video(src, 48, 32, pts, codec="libx264", time_base=Fraction(1, 12800), options={"g": "5"}, audio="aac")
    prores = EncodeOptions(codec="prores_ks")
    joined, whole = tmp_path / "joined.mov", tmp_path / "whole.mov"
    parts = []
    for s in index_segments(src, 3):
        parts.append(tmp_path / f"{s.index:05d}.nut")
        encode_segment(src, s, parts[-1], invert, prores, joined_into=joined)
    assert len(parts) == 3 and all(segment_done(p) for p in parts)
    join_segments(src, parts, joined, VideoReport(str(src), ""))
    process_video(src, whole, invert, prores)
    assert _timing(joined) == _timing(whole) and len(_timing(joined)[0]) == 15
    assert len(decoded_frames(joined)) == 15  # (prores_ks itself is not bit-reproducible run to run)
    with av.open(str(joined)) as c:
        assert c.streams.video[0].codec_context.name == "prores"


@pytest.mark.parametrize("suffix, keyint", [(".mp4", 12), (".mp4", 5), (".mov", 24)])
def test_a_last_segment_of_one_frame_keeps_the_frame_rate_and_decoding_times_even(tmp_path, suffix, keyint):
    """A segment of a single frame has no B-frame delay: joined as encoded, its decoding time jumps,
    and MP4 demuxers then read another average frame rate (392/17 for 24 fps)."""
    n = 4 * keyint + 1
    src, joined, whole = tmp_path / f"clip{suffix}", tmp_path / f"joined{suffix}", tmp_path / f"whole{suffix}"
    options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0", "bf": "3"}
    make_video(src, 64, 48, list(range(n)), time_base=Fraction(1, 24), rate=24, audio=None, options=options)
    segments = _join_and_whole(src, joined, whole)
    assert segments[-1].frames == 1
    (pts, rate, _), (pts_whole, rate_whole, _) = _timing(joined), _timing(whole)
    assert pts == pts_whole and rate == rate_whole == 24
    with av.open(str(joined)) as c:
        dts = [p.dts for p in c.demux(c.streams.video[0]) if p.size]
    steps = {b - a for a, b in zip(dts, dts[1:])}
    assert len(steps) == 1, steps  # one step from the first frame to the last


def test_ffmpeg_messages_keep_their_digits_and_alike_ones_are_counted():
    from algnet_cli.video.decode import log_lines

    logs = [(16, "h264", "error while decoding MB 12 34"), (16, "h264", "error while decoding MB 5 6"),
            (16, "mov", "stream 1, offset 0x3f2: partial file"), (32, "h264", "an info line, not shown")]  # fmt: skip
    assert log_lines(logs) == [
        "h264: error while decoding MB 12 34 (and 1 alike)",
        "mov: stream 1, offset 0x3f2: partial file",
    ]


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_segments_of_a_video_with_alpha_keep_it_once_joined(tmp_path, suffix):
    """VP9's alpha is Matroska side data, which NUT does not carry: segments of a transparent clip were
    joined opaque, without a note. They are now stored in the joined file's container, and the joined
    video's alpha is the single-machine run's (both encoded by the same encoder, from the same frames)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_video_fidelity import _decoder, encode_clip, probe_view

    src = encode_clip(tmp_path / "a.webm", codec="libvpx-vp9", pix_fmt="yuva420p", alpha=True, n=24,
                      options={"g": "6", "b": "0", "crf": "10"})  # fmt: skip
    joined, whole = tmp_path / f"joined{suffix}", tmp_path / f"whole{suffix}"
    segments = index_segments(src, 4)
    assert len(segments) >= 3
    parts = [tmp_path / f"part{s.index}.nut" for s in segments]
    for s, part in zip(segments, parts):
        encode_segment(src, s, part, lambda f: f, joined_into=joined)
    report = VideoReport(str(src), "")
    join_segments(src, parts, joined, report)
    process_video(src, whole, lambda f: f)

    def alphas(path):
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            decoder = _decoder(v)  # libvpx: FFmpeg's own VP9 decoder drops the alpha
            return [f.to_ndarray(format="rgba")[..., 3] for p in c.demux(v) for f in decoder.decode(p)]

    assert probe_view(joined)["alpha"] and probe_view(whole)["alpha"]
    a, b, s = alphas(joined), alphas(whole), alphas(src)
    assert len(a) == len(b) == len(s) == 24
    assert all(np.abs(x.astype(int) - y).max() <= 3 for x, y in zip(a, s))
