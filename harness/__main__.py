"""``python -m harness``: the in-container entry point."""

from harness.cli import main

raise SystemExit(main())
