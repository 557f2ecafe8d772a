"""The owner of output paths on its own: which folders are the user's."""

from __future__ import annotations

import pytest

from algnet_cli.errors import UsageError
from algnet_cli.outputs import OutputGuard


def test_only_algnets_own_hidden_leftovers_leave_a_folder_unclaimed(tmp_path):
    out = tmp_path / "out"
    (out / ".clip.mp4.algnet-segments").mkdir(parents=True)  # an interrupted cluster video's segments
    (out / ".algnet-tmp-host~1~x.png").write_bytes(b"")
    OutputGuard().claim_folder(out, "-o")  # nothing of the user's there
    (out / ".DS_Store").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"\.DS_Store"):
        OutputGuard().claim_folder(out, "-o")
    OutputGuard(overwrite=True).claim_folder(out, "-o")
