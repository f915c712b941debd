"""Large files are hashed once: the digest is reused while size and mtime hold, and only then."""

from __future__ import annotations

import hashlib
import os

import pytest

from designkit import file_hashes


@pytest.fixture
def counted_reads(monkeypatch, tmp_path):
    monkeypatch.setenv("DESIGNKIT_HOME", str(tmp_path / "home"))
    reads = []
    real = file_hashes.digest_files

    def counting(paths):
        paths = list(paths)
        reads.append(paths)
        return real(paths)

    monkeypatch.setattr(file_hashes, "digest_files", counting)
    return reads


def test_an_unchanged_file_is_hashed_once(tmp_path, counted_reads):
    weights = tmp_path / "lit_model.pth"
    weights.write_bytes(b"weights" * 1000)
    first = file_hashes.sha256_file(weights)
    second = file_hashes.sha256_file(weights)
    assert first == second == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len(counted_reads) == 1
    assert (tmp_path / "home" / file_hashes.CACHE_FILE).is_file()


def test_a_file_whose_size_or_mtime_changed_is_hashed_again(tmp_path, counted_reads):
    weights = tmp_path / "lit_model.pth"
    weights.write_bytes(b"a" * 100)
    file_hashes.sha256_file(weights)
    stat = weights.stat()
    weights.write_bytes(b"b" * 100)  # same size: only the mtime tells
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_hashes.sha256_file(weights) == hashlib.sha256(b"b" * 100).hexdigest()
    weights.write_bytes(b"b" * 101)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same mtime: only the size tells
    assert file_hashes.sha256_file(weights) == hashlib.sha256(b"b" * 101).hexdigest()
    assert len(counted_reads) == 3


def test_a_copy_elsewhere_is_hashed_on_its_own(tmp_path, counted_reads):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"x" * 10)
    os.utime(tmp_path / "b", ns=(0, (tmp_path / "a").stat().st_mtime_ns))
    file_hashes.sha256_file(tmp_path / "a")
    file_hashes.sha256_file(tmp_path / "b")
    assert len(counted_reads) == 2


def test_an_unwritable_cache_only_costs_a_rehash(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file where the cache directory should be")  # every write under it fails
    monkeypatch.setenv("DESIGNKIT_HOME", str(home))
    (tmp_path / "w").write_bytes(b"w")
    assert file_hashes.sha256_file(tmp_path / "w") == hashlib.sha256(b"w").hexdigest()
    (home.parent / "bad").mkdir()
    monkeypatch.setenv("DESIGNKIT_HOME", str(home.parent / "bad"))
    (home.parent / "bad" / file_hashes.CACHE_FILE).write_text("{not json")
    assert file_hashes.sha256_file(tmp_path / "w") == hashlib.sha256(b"w").hexdigest()
