"""Safe files: temporaries named for their owner, and content hashes."""


def test_a_dead_processs_temporaries_are_removed_and_no_one_elses(tmp_path):
    from algnet_cli.fileio import TEMP_PREFIX, remove_temps_of

    dead = tmp_path / f"{TEMP_PREFIX}node-a~4242~x1.png"
    other_pid = tmp_path / f"{TEMP_PREFIX}node-a~42~x2.png"
    other_host = tmp_path / f"{TEMP_PREFIX}node-b~4242~x3.png"
    for p in (dead, other_pid, other_host):
        p.write_bytes(b"partial")
    assert remove_temps_of([tmp_path, tmp_path / "missing"], "node-a", 4242) == 1
    assert not dead.exists() and other_pid.exists() and other_host.exists()


def test_a_files_sha256_follows_its_content(tmp_path):
    import hashlib
    import os

    from algnet_cli.fileio import sha256_file

    f = tmp_path / "m.bin"
    f.write_bytes(b"first")
    assert sha256_file(f) == hashlib.sha256(b"first").hexdigest()
    f.write_bytes(b"second, longer")
    os.utime(f, ns=(1, 1))
    assert sha256_file(f) == hashlib.sha256(b"second, longer").hexdigest()
    f.write_bytes(b"second, LONGER")  # same size
    os.utime(f, ns=(2, 2))
    assert sha256_file(f) == hashlib.sha256(b"second, LONGER").hexdigest()
