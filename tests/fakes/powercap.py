"""A fake Linux powercap (RAPL) sysfs tree, built in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

MAX = 262_143_328_850  # a real max_energy_range_uj


def make_zone(path: Path, name: str, energy: int, max_range: int) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


def make_tree(root: Path, sockets: int = 1, dram: bool = True, max_range: int = MAX) -> Path:
    """Like /sys/class/powercap: packages, nested subzones linked at the top level too."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl").mkdir()  # the control type directory: no counters, ignored
    for n in range(sockets):
        pkg = make_zone(root / f"intel-rapl:{n}", f"package-{n}", 1_000_000 * (n + 1), max_range)
        core = make_zone(pkg / f"intel-rapl:{n}:0", "core", 0, max_range)
        (root / core.name).symlink_to(core)
        if dram:
            sub = make_zone(pkg / f"intel-rapl:{n}:1", "dram", 500_000, max_range)
            (root / sub.name).symlink_to(sub)
    return root


def set_uj(root: Path, zone: str, value: int) -> None:
    # Atomic, like a sysfs read: the sampling thread must never see a half-written file.
    tmp = root / zone / "energy_uj.tmp"
    tmp.write_text(f"{value}\n")
    os.replace(tmp, root / zone / "energy_uj")


def add_uj(root: Path, zone: str, delta: int, max_range: int = MAX) -> None:
    now = int((root / zone / "energy_uj").read_text())
    set_uj(root, zone, (now + delta) % max_range)
