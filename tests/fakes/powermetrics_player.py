"""Plays recorded ``powermetrics -f plist`` output as the real tool writes it: one document per
interval, NUL-separated, paced by the ``-i`` argument. Usage: ``python powermetrics_player.py FILE
[powermetrics arguments...]``; the documents are replayed in a loop until terminated."""

from __future__ import annotations

import sys
import time


def main() -> None:
    path, args = sys.argv[1], sys.argv[2:]
    interval_s = int(args[args.index("-i") + 1]) / 1000.0 if "-i" in args else 0.1
    with open(path, "rb") as f:
        docs = [d for d in f.read().split(b"\0") if d.strip()]
    out = sys.stdout.buffer
    while True:
        for doc in docs:
            time.sleep(interval_s)
            out.write(doc + b"\0")
            out.flush()


if __name__ == "__main__":
    main()
