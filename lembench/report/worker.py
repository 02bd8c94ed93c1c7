"""A process that renders experiment pages: ``python -m lembench.report.worker``.

``build_site`` starts one per extra CPU for large sites. It reads a pickled ``(rows, site,
common)`` from stdin (written by the parent, never by anyone else), writes those rows' pages into
``site`` and prints ``rendered <n>``. A subprocess rather than multiprocessing: no fork of a process
running polars' thread pool, and no re-import of the caller's main module (a script without a
``__main__`` guard would otherwise start the build again).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path


def main() -> int:
    rows, site, common = pickle.load(sys.stdin.buffer)
    from lembench.report.build import render_experiments

    written = render_experiments(rows, Path(site), common)
    print(f"rendered {len(written)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
