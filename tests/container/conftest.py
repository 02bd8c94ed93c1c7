"""The container tier: a real Docker-compatible engine (podman in CI, see .ci/podman.sh) and the
real lembench `cpu` image. Every test here is marked ``container``.

Without an engine or the image the tier is skipped with the reason, except when
LEMBENCH_REQUIRE_ENGINE=1 (set by CI): then a missing engine or image fails every test, so CI
cannot pass without running the tier for real.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from harness import __version__


def _required() -> bool:
    return os.environ.get("LEMBENCH_REQUIRE_ENGINE", "").strip().lower() not in ("", "0", "false")


def _problem() -> str | None:
    from lembench.imagedefs import LABEL_SOURCE, image_ref, source_digest, source_root
    from lembench.runtimes.engine import EngineError, choose_image, connect, get_image

    try:
        client, _ = connect(timeout=10)
    except EngineError as exc:
        return str(exc)
    try:
        image = get_image(client, choose_image("pytorch", {}, gpu=False), __version__)
    except EngineError as exc:
        return f"{exc} (CI: .ci/podman.sh builds {image_ref('cpu')})"
    finally:
        client.close()
    root = source_root()
    if root and (image.labels or {}).get(LABEL_SOURCE) != source_digest(root, "cpu"):
        return (
            f"{image_ref('cpu')} was built from other sources than this checkout: rebuild it "
            "(.ci/podman.sh, or lembench images build cpu)"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if "tests/container/" in str(i.fspath).replace("\\", "/")]
    if not ours:
        return
    problem = _problem()
    for item in ours:
        item.add_marker(pytest.mark.container)
        if problem and not _required():
            item.add_marker(pytest.mark.skip(reason=f"container tier: {problem}"))
    config.stash[_PROBLEM] = problem


_PROBLEM = pytest.StashKey[Any]()


@pytest.fixture(autouse=True, scope="session")
def _engine_required(request: pytest.FixtureRequest) -> None:
    """Under LEMBENCH_REQUIRE_ENGINE=1 a missing engine or image is a failure, not a skip
    (session scope: checked before the module fixtures that would run suites)."""
    problem = request.config.stash.get(_PROBLEM, None)
    if problem and _required():
        pytest.fail(
            f"container tier required (LEMBENCH_REQUIRE_ENGINE=1): {problem}", pytrace=False
        )


@pytest.fixture(scope="session")
def client():
    from lembench.runtimes.engine import connect

    c, _ = connect()
    yield c
    c.close()
