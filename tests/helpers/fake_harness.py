"""A stand-in for ``python -m harness`` launched by runtime tests: ``python fake_harness.py
run <request>``. Its behaviour is read from ``behaviour.txt`` beside the request:

- ``exit N``: print a line and exit with N
- ``hang``: start a child process, write both pids to ``pids.txt``, then sleep forever
- ``env``: write the environment it sees to ``env.json`` and exit 0
- ``fatal REASON CODE``: write ``fatal.json`` with REASON and exit with CODE
Without behaviour.txt, the variable LEMBENCH_FAKE_BEHAVIOUR says it (it passes the runtime's
allowlist), for tests that drive the whole CLI.

- ``invalid``: write a result for each requested experiment that does not validate, exit 0
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

io_dir = Path(sys.argv[2]).parent
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
elif behaviour[0] == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (io_dir / "pids.txt").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(600)
