"""``python -m lembench``: same as the ``lembench`` console script."""

from lembench.cli import main

main()
