"""The converted-GGUF cache: keys, atomic publication, races, hash memo. No torch needed."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from harness.models import gguf_cache
from harness.models.gguf_cache import MARKER, cache_key, cache_root, file_sha256, lookup, publish


def test_root_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEMBENCH_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path / "gguf"
    monkeypatch.delenv("LEMBENCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "lembench" / "gguf"


def test_key_names_hash_and_versions() -> None:
    key = cache_key("ab" * 32, "5.23.0", "0.19.0")
    assert key == "abababababababab-tf5.23.0-gguf0.19.0"
    assert cache_key("ab" * 32, "5.24.0", "0.19.0") != key
    assert cache_key("ab" * 32, "5.23.0", None).endswith("-ggufna")


def test_publish_then_lookup(tmp_path: Path) -> None:
    assert lookup("k", tmp_path) is None
    entry = publish(
        "k", lambda d: (d / "model.bin").write_text("weights"), {"sha256": "x"}, tmp_path
    )
    assert entry == tmp_path / "k" and lookup("k", tmp_path) == entry
    assert (entry / "model.bin").read_text() == "weights"
    assert json.loads((entry / MARKER).read_text())["sha256"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary folder left
    assert (entry / "model.bin").stat().st_mode & 0o777 == 0o644  # readable by every user
    assert entry.stat().st_mode & 0o777 == 0o755


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def write(folder: Path) -> None:
        (folder / "half").write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish("k", write, {}, tmp_path)
    assert list(tmp_path.iterdir()) == [] and lookup("k", tmp_path) is None


def test_concurrent_writers_keep_one_complete_entry(tmp_path: Path) -> None:
    barrier = threading.Barrier(4)
    results: list[Path] = []

    def write(folder: Path) -> None:
        (folder / "model.bin").write_text(threading.current_thread().name)
        barrier.wait()  # everybody has a finished copy before anybody renames

    threads = [
        threading.Thread(target=lambda: results.append(publish("k", write, {}, tmp_path)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "k"] * 4
    assert [p.name for p in tmp_path.iterdir()] == ["k"]
    assert (tmp_path / "k" / "model.bin").read_text().startswith("Thread")


def test_incomplete_entry_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir(parents=True)
    (tmp_path / "k" / "junk").write_text("from a crashed writer")
    assert lookup("k", tmp_path) is None
    entry = publish("k", lambda d: (d / "model.bin").write_text("ok"), {}, tmp_path)
    assert lookup("k", tmp_path) == entry and not (entry / "junk").exists()


def test_file_hash_is_memoised_until_the_file_changes(tmp_path: Path, monkeypatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" * 1000)
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    root = tmp_path / "cache"
    assert file_sha256(model, root) == expected
    calls = []
    monkeypatch.setattr(gguf_cache, "sha256_file", lambda p: calls.append(p) or "0" * 64)
    assert file_sha256(model, root) == expected and not calls  # from the memo
    model.write_bytes(b"changed, with another size")
    assert file_sha256(model, root) == "0" * 64 and calls == [model]
