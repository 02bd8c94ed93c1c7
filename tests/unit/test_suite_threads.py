"""The experiment's ``threads`` key (suite schema_version 4): sweepable, part of the load group,
absent by default (old ids stay), and refused in older suites with a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract.groups import load_group_id
from harness.hardware.threads import allowed_cpus, resolve_threads
from lembench.errors import UserError
from lembench.suite import load_suite


def _suite(tmp_path: Path, version: int, experiment: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"schema_version: {version}\nname: t\nexperiment: {{model: smollm2-135m, {experiment}}}\n"
        + extra
    )
    return path


def test_threads_sweep_gives_one_load_group_per_count(tmp_path: Path) -> None:
    path = _suite(
        tmp_path, 4, "backend: pytorch", "sweep:\n  threads: [1, 2]\n  batch_size: [1, 4]\n"
    )
    suite = load_suite(path)
    assert sorted(e.config["threads"] for e in suite.experiments) == [1, 1, 2, 2]
    groups = {load_group_id(e.config) for e in suite.experiments}
    assert len(groups) == 2  # llama.cpp fixes its threads at load: one group per count


def test_absent_threads_keeps_ids_and_groups(tmp_path: Path) -> None:
    v3 = load_suite(_suite(tmp_path, 3, "backend: pytorch")).experiments[0]
    v4 = load_suite(_suite(tmp_path, 4, "backend: pytorch")).experiments[0]
    assert "threads" not in v4.config
    assert v3.experiment_id == v4.experiment_id
    assert load_group_id(v3.config) == load_group_id(v4.config)
    with_threads = load_suite(_suite(tmp_path, 4, "backend: pytorch, threads: 1")).experiments[0]
    assert with_threads.experiment_id != v4.experiment_id


@pytest.mark.parametrize(
    ("version", "experiment", "message"),
    [
        (
            3,
            "threads: 2",
            "experiment.threads: threads needs schema_version: 4 (this suite says 3)",
        ),
        (4, "threads: 0", "threads"),
        (4, "threads: two", "threads"),
    ],
)
def test_bad_threads_is_a_one_line_error(
    tmp_path: Path, version: int, experiment: str, message: str
) -> None:
    with pytest.raises(UserError) as e:
        load_suite(_suite(tmp_path, version, f"backend: pytorch, {experiment}"))
    text = str(e.value)
    assert "s.yaml" in text and message in text and "\n" not in text


def test_resolution_order() -> None:
    assert resolve_threads({"threads": 2}, 3).to_dict() == {
        "count": 3,
        "source": "backend_option",
        "allowed_cpus": allowed_cpus(),
    }
    assert resolve_threads({"threads": 2}).source == "experiment"
    default = resolve_threads({})
    assert (default.count, default.source) == (allowed_cpus(), "affinity")
