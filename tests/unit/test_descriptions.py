"""One description per backend: the registry finds built-ins, and every table reads descriptions
(suite schema, capabilities, images, self test, doctor, environment), for plugins too."""

from __future__ import annotations

import copy
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.base import Backend
from harness.contract import registry
from harness.contract.descriptions import FREE_FORM_OPTIONS, BackendDescription
from harness.contract.schemas import load_schema
from harness.hardware import selftest
from lembench import imagedefs
from lembench.errors import UserError
from lembench.results.environment import environment_fields, environment_key
from lembench.suite import load_suite
from tests.helpers.plugins import register_backends
from tests.unit.conftest import make_result

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "tests.helpers.described_backend:DescribedEchoBackend"
BARE = "tests.helpers.echo_backend:EchoBackend"


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch):
    register_backends(monkeypatch, {"echo-plus": PLUGIN, "echo": BARE})
    yield
    registry.reset()


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 3\nname: s\nexperiment:\n" + body, encoding="utf-8")
    return path


# -- discovery ---------------------------------------------------------------------------------


def test_every_backend_module_class_is_found_with_its_own_description() -> None:
    found = registry.builtin_backends()
    assert {"pytorch", "llamacpp", "openai", "vllm", "tensorrt-llm"} <= set(found)
    for name, (target, description) in found.items():
        cls = registry.load(name)
        assert f"{cls.__module__}:{cls.__name__}" == target
        assert cls.__dict__["description"] is description and description.name == name
        # name and supports_traffic follow from the description, said once.
        assert cls.name == name and cls.supports_traffic is description.traffic
        # A backend that serves traffic implements agenerate; one that does not, does not.
        serves = cls.agenerate is not Backend.agenerate
        assert serves is description.traffic, name
        assert description.summary and description.imports, name


def test_listing_and_describing_backends_imports_no_engine() -> None:
    code = (
        "import sys; from harness.contract import registry; from lembench import imagedefs; "
        "registry.descriptions(); imagedefs.image_for_backend('vllm', True); "
        "heavy = ('torch', 'transformers', 'vllm', 'tensorrt_llm', 'llama_cpp', 'httpx', "
        "'sglang', 'aiohttp', 'numpy'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_aliases_are_the_spellings_users_write() -> None:
    assert registry.canonical("llama.cpp") == "llamacpp"
    assert registry.canonical("trtllm") == "tensorrt-llm"
    assert registry.describe("tensorrt_llm").name == "tensorrt-llm"
    assert imagedefs.image_for_backend("llama-cpp", gpu=False) == "llamacpp"
    with pytest.raises(registry.UnknownNameError, match="did you mean 'tensorrt-llm'"):
        registry.check_name("trtllm")


def test_capabilities_come_from_descriptions() -> None:
    assert registry.with_capability("traffic") == sorted(
        d.name for d in registry.descriptions() if d.traffic
    )
    assert "pytorch" in registry.with_capability("dummy_weights")
    assert "llamacpp" not in registry.with_capability("dummy_weights")
    assert set(registry.with_capability("tested_on_hardware")).isdisjoint({"vllm", "tensorrt-llm"})


# -- the suite schema --------------------------------------------------------------------------


def test_composed_suite_schema_is_the_old_static_one() -> None:
    """The option blocks moved from suite.schema.json into the descriptions; composed, the schema
    is what the file said before (pytorch's block now names its engine in messages too)."""
    old = json.loads((ROOT / "tests/data/suite.schema.v3.static.json").read_text())
    old["$defs"]["pytorch_options"]["x-backend"] = "pytorch"
    new = copy.deepcopy(load_schema("suite"))
    before = {"pytorch", "llamacpp", "openai", "vllm", "tensorrt"}
    for extra in {d.block for d in registry.descriptions()} - before:  # backends added since
        new["$defs"]["experiment"]["properties"].pop(extra)
        new["$defs"]["experiment_partial"]["properties"].pop(extra)
        new["$defs"].pop(f"{extra}_options")
    # Suite schema_version 4 added the containers' network setting, cycles as a convergence rule,
    # the thermal gap and goodput's latency limits.
    assert new["properties"].pop("network")["default"] == "none"
    assert new["properties"]["schema_version"]["enum"] == [1, 2, 3, 4]
    new["properties"]["schema_version"] = old["properties"]["schema_version"]
    assert {"$ref": "#/$defs/convergence"} in new["properties"]["cycles"]["oneOf"]
    new["properties"]["cycles"] = old["properties"]["cycles"]
    new["properties"].pop("gap")
    new["$defs"].pop("convergence")
    new["$defs"].pop("thermal_gap")
    assert "ttft_s" in new["$defs"]["traffic"]["properties"].pop("slo")["properties"]
    # ... and the experiment's threads; the engines' thread defaults now follow it.
    for part in ("experiment", "experiment_partial"):
        new["$defs"][part]["properties"].pop("threads")
    for block, key in (("pytorch_options", "threads"), ("llamacpp_options", "n_threads")):
        assert "experiment's threads" in new["$defs"][block]["properties"][key]["description"]
        new["$defs"][block]["properties"][key]["description"] = old["$defs"][block]["properties"][
            key
        ]["description"]
    # ... and the slurm runtime with its block.
    props = new["properties"]
    props.pop("slurm")
    props["runtime"]["enum"].remove("slurm")
    props["runtime"]["description"] = props["runtime"]["description"].split(" slurm: ")[0]
    assert new == old
    # Keys with defaults in the same order too: it decides where filled-in defaults go in the
    # configs of result files.
    assert _defaulted(new) == _defaulted(old)


def _defaulted(schema: dict) -> list[str]:
    out = []
    for key, sub in schema["$defs"]["experiment"]["properties"].items():
        ref = sub.get("$ref", "")
        target = schema["$defs"][ref.rsplit("/", 1)[1]] if ref else {}
        if "default" in sub or "default" in target:
            out.append(key)
    return out


def test_stored_suite_schema_holds_no_option_block() -> None:
    stored = json.loads((ROOT / "schemas/suite.schema.json").read_text())
    for description in registry.descriptions():
        assert description.block not in stored["$defs"]["experiment"]["properties"]


def test_plugin_gets_its_option_block_validated(plugins, tmp_path: Path) -> None:
    ok = _suite(tmp_path, "  backend: echo-plus\n  model: m/m\n  echo_plus: {step_ms: 5}\n")
    (experiment,) = load_suite(ok).experiments
    assert experiment.config["echo_plus"] == {"step_ms": 5}
    bad = _suite(tmp_path, "  backend: echo-plus\n  model: m/m\n  echo_plus: {steps: 5}\n")
    with pytest.raises(UserError) as err:
        load_suite(bad)
    message = str(err.value)
    assert "\n" not in message
    assert "experiment.echo_plus.steps: unknown key for the echo-plus backend" in message
    assert "did you mean 'step_ms'" in message


def test_plugin_default_options_are_filled(plugins, tmp_path: Path) -> None:
    path = _suite(tmp_path, "  backend: echo-plus\n  model: m/m\n  echo_plus: {}\n")
    (experiment,) = load_suite(path).experiments
    assert experiment.config["echo_plus"] == {"step_ms": 2}


def test_plugin_without_description_gets_a_free_form_block(plugins, tmp_path: Path) -> None:
    description = registry.describe("echo")
    assert description.options_schema == FREE_FORM_OPTIONS and not description.traffic
    path = _suite(tmp_path, "  backend: echo\n  model: m/m\n  echo: {anything: 1}\n")
    (experiment,) = load_suite(path).experiments
    assert experiment.config["echo"] == {"anything": 1}
    traffic = _suite(
        tmp_path, "  backend: echo\n  model: m/m\n  traffic: {pattern: poisson, qps: 2}\n"
    )
    with pytest.raises(UserError, match="does not serve traffic"):
        load_suite(traffic)


def test_every_table_reads_a_plugin_description(plugins) -> None:
    description = registry.describe("echoplus")
    assert isinstance(description, BackendDescription) and description.name == "echo-plus"
    assert "echo-plus" in registry.with_capability("traffic")
    assert selftest.engines()["echo-plus"] == ("json",)
    entry = selftest.check_backend("echo-plus", force=True)
    assert entry["importable"] and entry["versions"]["pytest"] == pytest.__version__
    assert imagedefs.image_for_backend("echo-plus", gpu=True) == "pytorch"
    assert imagedefs.image_for_backend("echo-plus", gpu=False) == "cpu"


def test_a_block_that_is_an_experiment_key_is_refused(monkeypatch) -> None:
    register_backends(monkeypatch, {"batching": BARE})
    try:
        with pytest.raises(ValueError, match="option block 'batching' is already an experiment"):
            load_schema("suite")
    finally:
        registry.reset()


# -- environment --------------------------------------------------------------------------------


def _with_versions(backend: str, versions: dict[str, str]) -> dict:
    result = make_result()
    result["config"]["backend"] = backend
    result["environment"] = {"gpus": [], "cpu": {"model": "x"}, "packages": {}}
    result["provenance"]["backend"] = {"versions": versions}
    return result


def test_engine_versions_join_the_environment_key() -> None:
    """llama.cpp records its version as llama_cpp_python: two versions are two environments (the
    old list spelt it llama-cpp-python and llama_cpp, so they were averaged together)."""
    a = _with_versions("llamacpp", {"llama_cpp_python": "0.3.16"})
    b = _with_versions("llamacpp", {"llama_cpp_python": "0.3.17"})
    assert environment_fields(a)["engines"] == "llama_cpp_python 0.3.16"
    assert environment_key(a) != environment_key(b)
    vllm = _with_versions("vllm", {"vllm": "0.11.0", "torch": "2.8.0"})
    assert environment_fields(vllm)["engines"] == "vllm 0.11.0"


def test_backend_modules_keep_engines_inside_methods() -> None:
    """Discovery imports every module of harness.backends: none may import an engine at the top."""
    heavy = {"torch", "transformers", "vllm", "tensorrt_llm", "llama_cpp", "httpx", "sglang"}
    for path in sorted((ROOT / "harness/backends").glob("*.py")):
        top = [
            line.split()[1].split(".")[0]
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        ]
        assert not heavy & set(top), (path.name, heavy & set(top))
    assert inspect.ismodule(registry)


def test_imagedefs_reads_descriptions_with_the_standard_library_only() -> None:
    """.ci/podman.sh runs lembench.imagedefs with the system python3: no site-packages here."""
    out = subprocess.run(
        [sys.executable, "-S", "-m", "lembench.imagedefs", "base", "sglang"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("lmsysorg/sglang:")
