"""``lembench reproduce`` end to end on stored runs (written through the real store), and every bad
input through the real command: exit 2, one line, nothing written."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from lembench.cli import cli
from lembench.reproduce import schemas
from lembench.reproduce.display import print_result
from lembench.reproduce.reference import default_studies_dir, load_study, load_study_suite
from lembench.reproduce.runner import dummy_suite, reproduce
from lembench.store import ResultStore
from tests.helpers.repro_runs import REFERENCE, SUITE, store_runs, write_study

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["ecocompute-batch-sweep", "ecocompute-int8-paradox", "ecocompute-nf4",
           "mlenergy-v3-llama31-8b", "tudelft-sse-2025-humaneval"]  # fmt: skip
#: Per batch size: the measured J/token that reproduces every toy claim (published 4 / 2 / 1).
GOOD = {1: 4.0, 2: 2.1, 4: 1.05}


def lembench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lembench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def quiet() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, highlight=False), buffer


@pytest.fixture
def toy(tmp_path: Path):
    """The toy study and a results folder with three good cycles of each experiment."""
    write_study(tmp_path / "studies")
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        value = GOOD[e.config["batch_size"]]
        store_runs(results, suite.name, e.config, [value * f for f in (0.99, 1.0, 1.01)])
    return study, suite, results


def compare(study, results: Path, dummy: bool = False):
    out, buffer = quiet()
    done = reproduce(study, results, out, out, dummy=dummy, compare_only=True)
    print_result(out, study, done.results, done.record)  # what the command prints
    return done, buffer.getvalue()


def verdicts(done) -> dict[str, tuple[str, str]]:
    return {r.claim["id"]: (r.judgement.verdict, r.judgement.why) for r in done.results}


# -- the shipped studies ------------------------------------------------------------------------


def test_every_shipped_study_validates_and_its_suite_passes_lembench_validate():
    folder = default_studies_dir()
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == SHIPPED
    readme = (folder / "README.md").read_text("utf-8")
    runner = CliRunner()
    for study_id in SHIPPED:
        study = load_study(folder / study_id)  # reference.schema.json + cross-checks
        assert schemas.problem(schemas.REFERENCE, study.reference) is None
        assert study_id in readme
        result = runner.invoke(cli, ["validate", str(study.suite_path)])
        assert result.exit_code == 0, result.output
        assert "Suite is valid." in result.output
        suite = load_study_suite(study)
        assert suite.name == f"repro-{study_id}"
        for claim in study.claims:  # unverified figures are marked, never silently verified
            assert all(p["verification"] in ("verified", "unverified") for p in claim["points"])


@pytest.mark.parametrize("study_id", [s for s in SHIPPED if not s.startswith("tudelft")])
def test_dummy_capable_studies_use_bundled_architectures(study_id: str, tmp_path: Path):
    study = load_study(default_studies_dir() / study_id)
    suite = dummy_suite(study, load_study_suite(study), tmp_path, persist=False)
    assert suite.name == f"repro-{study_id}-dummy"
    assert all(e.config["weights"] == "dummy" for e in suite.experiments)
    assert not any(tmp_path.iterdir())  # persist=False writes nothing


def test_list_shows_every_study(tmp_path: Path):
    proc = lembench("reproduce", "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for study_id in SHIPPED:
        assert study_id in proc.stdout
    assert "no (llamacpp: no dummy weights)" in proc.stdout
    assert "yes (1 of 4 claims)" in proc.stdout  # the INT8 paradox: only pure INT8 compares


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_study_suggests_the_closest(tmp_path: Path):
    line = one_line_error(
        lembench("reproduce", "ecocompute-nf5", "--results-dir", "r", cwd=tmp_path)
    )
    assert "unknown study 'ecocompute-nf5'; did you mean 'ecocompute-nf4'?" in line
    assert not (tmp_path / "r").exists()


def test_dummy_weights_on_the_llamacpp_study_is_refused(tmp_path: Path):
    proc = lembench(
        "reproduce", "tudelft-sse-2025-humaneval", "--dummy-weights", "--results-dir", "r",
        cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(proc)
    assert "cannot run with dummy weights" in line and "llamacpp backend" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda r: r.pop("citation"), "citation", "required key missing"),
        (lambda r: r["claims"][0].update(metric="j_per_token"), "claims[0].metric",
         "did you mean 'j_per_output_token'"),
        (lambda r: r["claims"][1]["comparison"]["pairs"][0].update(numerator="b3"),
         "claims[1].comparison.pairs[0].numerator", "not a point of this claim"),
        (lambda r: r["claims"][0]["points"][0]["match"].update(batch_size=3),
         "claims[0].points[0].match", "selects no experiment"),
        (lambda r: r["claims"][0].update(dummy_weights="not_comparable"),
         "claims[0].dummy_weights_reason", "required key missing"),
        (lambda r: r["verification"].update(status="checked"), "verification.status",
         "allowed: verified, unverified"),
    ],
)  # fmt: skip
def test_bad_reference_is_one_line_naming_file_and_key(tmp_path: Path, edit, key, words):
    reference = copy.deepcopy(REFERENCE)
    edit(reference)
    write_study(tmp_path / "studies", reference=reference)
    proc = lembench(
        "reproduce", "toy", "--studies-dir", "studies", "--results-dir", "r", cwd=tmp_path
    )
    line = one_line_error(proc)
    assert f"studies/toy/reference.yaml: {key}: " in line
    assert words in line
    assert not (tmp_path / "r").exists()
    # --list validates every reference the same way.
    assert one_line_error(lembench("reproduce", "--list", "--studies-dir", "studies", cwd=tmp_path))


def test_suite_of_the_wrong_name_is_refused(tmp_path: Path):
    write_study(tmp_path / "studies", suite={**SUITE, "name": "toy"})
    line = one_line_error(lembench("reproduce", "toy", "--studies-dir", "studies", cwd=tmp_path))
    assert "studies/toy/suite.yaml: name: must be 'repro-toy'" in line


def test_compare_only_without_stored_runs(tmp_path: Path):
    write_study(tmp_path / "studies")
    line = one_line_error(
        lembench("reproduce", "toy", "--compare-only", "--studies-dir", "studies",
                 "--results-dir", "r", cwd=tmp_path)
    )  # fmt: skip
    assert "no stored runs of suite repro-toy" in line
    assert not (tmp_path / "r").exists()


def test_no_study_and_no_list(tmp_path: Path):
    assert "name a STUDY" in one_line_error(lembench("reproduce", cwd=tmp_path))


# -- judging stored runs ------------------------------------------------------------------------


def test_compare_only_writes_a_valid_record_and_a_second_call_a_second_one(toy, tmp_path: Path):
    _, _, results = toy
    args = ["reproduce", "toy", "--compare-only", "--studies-dir", "studies",
            "--results-dir", "results"]  # fmt: skip
    first = lembench(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "5 reproduced, 0 not reproduced, 0 not comparable." in first.stdout
    assert "published vs measured" in first.stdout
    second = lembench(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    files = sorted((results / "_reproductions" / "toy").glob("*.json"))
    assert len(files) == 2
    for path in files:
        record = json.loads(path.read_text("utf-8"))
        assert schemas.problem(schemas.RECORD, record) is None
        assert record["suite"] == "repro-toy" and record["compare_only"] is True
        assert record["hardware"]["measured"] == ["NVIDIA H100 80GB HBM3"]
        assert {c["verdict"] for c in record["claims"]} == {"reproduced"}
        curve = next(c for c in record["claims"] if c["id"] == "energy-curve")
        assert [p["measured"]["n"] for p in curve["points"]] == [3, 3, 3]
        assert (
            curve["points"][0]["measured"]["ci95_low"]
            < 4.0
            < curve["points"][0]["measured"]["ci95_high"]
        )
    # The store never reads the records folder as a suite.
    assert {r.result["suite"] for r in ResultStore(results).iter_runs()} == {"repro-toy"}


def test_not_reproduced(toy):
    study, suite, results = toy
    b4 = next(e for e in suite.experiments if e.config["batch_size"] == 4)
    store_runs(results, suite.name, b4.config, [2.0, 2.0, 2.0], hour=13)  # now: mean 1.5
    done, _ = compare(study, results)
    v = verdicts(done)
    assert v["energy-curve"][0] == "not_reproduced"
    # Six runs, three at 1.05 and three at 2.0: a wide interval, and the verdict says so.
    assert v["energy-curve"][1].startswith(
        "b4 / b1: 0.381 vs published 0.25 (+53%; tolerance ±20%)"
    )
    assert v["energy-curve"][1].endswith("straddles the tolerance: verdict uncertain")
    assert v["halving"][0] == "reproduced"  # b1 and b2 untouched


def test_every_kind_not_reproduced_by_a_flat_measurement(tmp_path: Path):
    """Energy that does not fall with batch size at all: every kind says no, each in its words."""
    write_study(tmp_path / "studies")
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        store_runs(results, suite.name, e.config, [3.96, 4.0, 4.04])
    done, text = compare(study, results)
    v = verdicts(done)
    assert {verdict for verdict, _ in v.values()} == {"not_reproduced"}
    assert v["energy-curve"][1].startswith(
        "from b1 to b2 the measured value moves +0.0% where the published one moves -50%; "
        "b4 / b1: 1 vs published 0.25 (+300%"
    )
    assert v["halving"][1].startswith("b2 / b1: 1 vs published 0.5 (+100%")
    assert "outside the published range [0.2, 0.3]" in v["quarter-range"][1]
    assert v["order"][1].startswith("order differs from position 1: measured b1 < b2 < b4")
    assert v["absolute-h100"][1].startswith("same hardware, but b4: 4 vs published 1 J per output")
    assert "0 reproduced, 5 not reproduced, 0 not comparable." in text


def test_failed_experiment_is_not_comparable_with_its_stored_reason(tmp_path: Path):
    write_study(tmp_path / "studies")
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        b = e.config["batch_size"]
        store_runs(results, suite.name, e.config, [GOOD[b]] * 3, failed=b == 2)
    done, text = compare(study, results)
    v = verdicts(done)
    reason = "failed (3 runs): backend_unavailable: bnb_int8 needs CUDA and bitsandbytes"
    assert v["halving"] == (
        "not_comparable",
        f"experiment {done.results[1].points[1].measured.experiment_id} (b2) {reason}",
    )
    assert v["quarter-range"][0] == "reproduced"  # b1 and b4 only
    assert reason in text


def test_estimated_energy_is_not_comparable(tmp_path: Path):
    write_study(tmp_path / "studies")
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        store_runs(results, suite.name, e.config, [GOOD[e.config["batch_size"]]] * 3,
                   hardware=None, estimate=True)  # fmt: skip
    done, _ = compare(study, results)
    for verdict, why in verdicts(done).values():
        assert verdict == "not_comparable"
        assert (
            "is an estimate (estimate_codecarbon; codecarbon's TDP model tracks time, not power)"
            in why
        )


def test_other_hardware_only_the_absolute_claim_is_not_comparable(tmp_path: Path):
    write_study(tmp_path / "studies")
    study = load_study(tmp_path / "studies" / "toy")
    suite = load_study_suite(study)
    results = tmp_path / "results"
    for e in suite.experiments:
        store_runs(results, suite.name, e.config, [GOOD[e.config["batch_size"]] * 3] * 3,
                   hardware="NVIDIA L4")  # fmt: skip
    done, _ = compare(study, results)
    v = verdicts(done)
    assert v["absolute-h100"] == ("not_comparable", "hardware differs: 1x NVIDIA H100 vs NVIDIA L4")
    assert all(
        v[c][0] == "reproduced" for c in ("energy-curve", "halving", "quarter-range", "order")
    )
    assert done.record["hardware"]["measured"] == ["NVIDIA L4"]


def test_latest_environment_wins_over_older_runs(toy):
    study, suite, results = toy
    for e in suite.experiments:  # re-run an hour later on other hardware: a flat curve
        store_runs(results, suite.name, e.config, [1.0, 1.0, 1.0], hardware="NVIDIA L4", hour=13)
    done, _ = compare(study, results)
    hardware = {p.measured.hardware for r in done.results for p in r.points}
    assert hardware == {"NVIDIA L4"}  # the latest environment, never a mix of the two
    assert all(p.measured.n == 3 for r in done.results for p in r.points)
    assert verdicts(done)["energy-curve"][0] == "not_reproduced"


def test_dummy_weights_compare(tmp_path: Path):
    reference = copy.deepcopy(REFERENCE)
    reference["claims"][1].update(
        dummy_weights="not_comparable", dummy_weights_reason="needs the real weights' outliers"
    )
    write_study(tmp_path / "studies", reference=reference)
    study = load_study(tmp_path / "studies" / "toy")
    results = tmp_path / "results"
    dummy = dummy_suite(study, load_study_suite(study), results, persist=False)
    for e in dummy.experiments:
        store_runs(results, dummy.name, e.config, [GOOD[e.config["batch_size"]]] * 3)
    done, _ = compare(study, results, dummy=True)
    v = verdicts(done)
    assert v["halving"][0] == "not_comparable"
    assert "this claim is not: needs the real weights' outliers" in v["halving"][1]
    assert v["energy-curve"][0] == "reproduced"
    assert v["energy-curve"][1].startswith(
        "measured with dummy weights (random values, real architecture): cost per token only; "
    )
    assert done.record["dummy_weights"] is True and done.record["suite"] == "repro-toy-dummy"
    # When it runs, the derived suite file is kept beside the records (the runs' provenance
    # names it), written once: the same content keeps its name.
    for _ in range(2):
        kept = dummy_suite(study, load_study_suite(study), results, persist=True)
    files = list((results / "_reproductions" / "toy" / "suites").glob("repro-toy-dummy-*.yaml"))
    assert [kept.path] == files
    assert yaml.safe_load(files[0].read_text("utf-8"))["experiment"]["weights"] == "dummy"
    assert [e.experiment_id for e in kept.experiments] == [
        e.experiment_id for e in dummy.experiments
    ]
