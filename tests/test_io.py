"""The one atomic writer (`gpm_sde._io.write_atomic`) of checkpoints, run configurations and
sample files: a failure at any point leaves the old file whole and no temporary file."""

from __future__ import annotations

import os

import pytest

from gpm_sde import _io


def test_write_atomic_writes_and_replaces(tmp_path):
    path = tmp_path / "samples.npy"
    _io.write_atomic(path, b"old")
    _io.write_atomic(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["samples.npy"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.eqx"
    _io.write_atomic(path, b"old")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        _io.write_atomic(path, b"half-written")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.eqx"]


def test_write_atomic_keeps_the_umask_mode(tmp_path):
    path = tmp_path / "config.toml"
    _io.write_atomic(path, b"x")
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
