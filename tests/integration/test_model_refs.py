"""Every kind of model reference loads for real: the bundled alias is converted once into a
Hugging Face layout directory, which is then loaded as a local ``path`` and, placed in a Hugging
Face cache layout, as a Hub id with the hub offline (how users with a populated cache run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from harness.backends.base import Prompt
from harness.backends.pytorch import PyTorchBackend
from harness.models.refs import resolve_ref

pytestmark = pytest.mark.integration
CONFIG = {"precision": "fp32", "device": "cpu", "pytorch": {"threads": None}}
PROMPT = [Prompt(token_ids=[504, 3527, 282, 4649, 314])]


def _greedy(resolved: dict) -> tuple[list[float], str, dict]:
    backend = PyTorchBackend(resolved, dict(CONFIG))
    info = backend.load()
    try:
        (gen,) = backend.generate(PROMPT, max_new_tokens=6, exact=True)
        return gen.token_times, gen.text, info.model
    finally:
        backend.unload()


@pytest.fixture(scope="module")
def reference() -> tuple[str, Path]:
    _, text, model = _greedy(resolve_ref("smollm2-135m"))
    return text, Path(model["cache_path"])


def test_local_directory(reference) -> None:
    text, converted = reference
    resolved = resolve_ref(str(converted))
    assert resolved["kind"] == "path"
    times, got, _ = _greedy(resolved)
    assert len(times) == 6 and got == text


def test_hub_id_from_the_local_hf_cache(reference, tmp_path: Path) -> None:
    """Through ``lembench run``: HF_HUB_CACHE and HF_HUB_OFFLINE pass the runtime's allowlist and
    are read by a fresh harness process, as for a user with a populated cache."""
    _, converted = reference
    repo = tmp_path / "hub" / "models--lembench-test--smollm2-135m"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in converted.iterdir():
        if f.is_file():
            os.symlink(f, snapshot / f.name)  # the hub cache links snapshots to blobs likewise
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    suite = tmp_path / "hub.yaml"
    suite.write_text(
        "schema_version: 1\nname: hub\nexperiment:\n  backend: pytorch\n"
        "  model: lembench-test/smollm2-135m\n"
        "  workload: {kind: synthetic, num_prompts: 2, input_tokens: 8, output_tokens: 4}\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lembench",
            "run",
            str(suite),
            "--results-dir",
            str(tmp_path / "results"),
            "--runtime",  # this tier is about the local runtime, engine or not
            "local",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = (tmp_path / "results" / "hub").glob("*/*/result.json")
    result = json.loads(path.read_text())
    assert result["provenance"]["model"]["kind"] == "hf"
    assert result["metrics"]["tokens_out"] == 2 * 4


def test_gguf_file_outside_any_package(reference, tmp_path: Path) -> None:
    text, _ = reference
    gguf = Path(resolve_ref("smollm2-135m")["ref"])
    if not gguf.exists():
        from harness.models.refs import alias_path

        gguf = alias_path("smollm2-135m")
    copy = tmp_path / "model.gguf"
    shutil.copyfile(gguf, copy)
    resolved = resolve_ref(str(copy))
    assert resolved["kind"] == "gguf"
    _, got, model = _greedy(resolved)
    assert got == text
    assert model["cache_used"] is True  # same bytes, same cache entry: no second conversion
