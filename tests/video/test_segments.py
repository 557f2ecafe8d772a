"""A video in keyframe segments, encoded apart and joined, gives every frame and timestamp of a whole run."""

from fractions import Fraction

import numpy as np
import pytest
from helpers.videos import decoded_frames, make_video, stream_packets

from algnet_cli.errors import VideoError
from algnet_cli.video import EncodeOptions, VideoReport, probe, process_video
from algnet_cli.video.segments import Segment, encode_segment, index_segments, join_segments


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
        part = tmp_path / f"part{s.index}{src.suffix}"
        assert len(encode_segment(src, s, part, invert, lossless)) == s.frames
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
        encode_segment(src, wrong, tmp_path / "part.mp4", invert)
    assert not (tmp_path / "part.mp4").exists()
