"""A stand-in for ``python -m harness`` launched by runtime tests: ``python fake_harness.py
run <request>``. Its behaviour is read from ``behaviour.txt`` beside the request:

- ``exit N``: print a line and exit with N
- ``hang``: start a child process, write both pids to ``pids.txt``, then sleep forever
- ``env``: write the environment it sees to ``env.json`` and exit 0
- ``fatal REASON CODE``: write ``fatal.json`` with REASON and exit with CODE
Without behaviour.txt, the variable LEMBENCH_FAKE_BEHAVIOUR says it (it passes the runtime's
allowlist), for tests that drive the whole CLI.

- ``invalid``: write a result for each requested experiment that does not validate, exit 0
- ``results N [hang]``: write a valid ok result for the first N requested experiments (one at a
  time, atomically, as the real harness does), then exit 0 (or behave like ``hang``)

Like the real harness, it watches its controller (harness.contract.lifeline) from the start.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

io_dir = Path(sys.argv[2]).parent
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.unit

from harness.contract import lifeline  # noqa: E402

lifeline.start(io_dir)
behaviour_file = io_dir / "behaviour.txt"
behaviour = (
    behaviour_file.read_text().split()
    if behaviour_file.exists()
    else os.environ.get("LEMBENCH_FAKE_BEHAVIOUR", "exit 70").split()
)
print(f"fake harness: {' '.join(behaviour)}", flush=True)
if behaviour[0] == "exit":
    sys.exit(int(behaviour[1]))
elif behaviour[0] == "env":
    (io_dir / "env.json").write_text(json.dumps(dict(os.environ)))
elif behaviour[0] == "fatal":
    (io_dir / "fatal.json").write_text(
        json.dumps({"reason": behaviour[1], "message": "fake harness gave up"})
    )
    sys.exit(int(behaviour[2]))
elif behaviour[0] == "invalid":
    request = json.loads(Path(sys.argv[2]).read_text())
    (io_dir / "results").mkdir()
    for exp in request["experiments"]:
        bad = {"experiment_id": exp["experiment_id"], "run_id": exp["run_id"], "status": "ok"}
        (io_dir / "results" / f"{exp['experiment_id']}.json").write_text(json.dumps(bad))
elif behaviour[0] == "results":
    from harness.contract.io import write_json_atomic
    from tests.unit.conftest import make_result

    request = json.loads(Path(sys.argv[2]).read_text())
    for exp in request["experiments"][: int(behaviour[1])]:
        result = make_result(
            suite=request["suite"],
            experiment_id=exp["experiment_id"],
            run_id=exp["run_id"],
            invocation_id=request["invocation_id"],
            load_group=request["load_group"],
            cycle=request["cycle"],
            cycles=request["cycles"],
        )
        write_json_atomic(io_dir / "results" / f"{exp['experiment_id']}.json", result)
        time.sleep(0.3)
    behaviour = behaviour[2:] or ["exit", "0"]
    if behaviour[0] == "exit":
        sys.exit(int(behaviour[1]))
if behaviour[0] == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (io_dir / "pids.txt").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(600)
