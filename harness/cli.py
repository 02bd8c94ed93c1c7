"""Command line of the harness: ``python -m harness run <io-dir>/request.json``, and
``python -m harness check`` (the self test of an environment: what it can measure).

Exit codes are ``harness.contract.exitcodes.ExitCode``; logs go to stderr, data only to files.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from harness import __version__


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lembench harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run a request written by the controller")
    run_p.add_argument("request", type=Path, help="path to request.json inside the io folder")
    check_p = sub.add_parser(
        "check",
        help="self test: NVML devices, RAPL, codecarbon, importable backends "
        "(JSON on stdout, summary on stderr)",
    )
    check_p.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="check this backend (repeatable); exit 65 if it cannot be imported",
    )
    check_p.add_argument("--quiet", action="store_true", help="JSON only, no summary on stderr")
    args = parser.parse_args(argv)

    if args.command == "check":
        from harness.hardware.selftest import main as check_main

        return int(check_main(args.backend, args.quiet))

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Library chatter goes to the log, not to the user's terminal (the controller shows progress).
    logging.captureWarnings(True)
    warnings.simplefilter("default")

    from harness.protocol import run

    return int(run(args.request.resolve()))
