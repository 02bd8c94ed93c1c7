"""sbatch rendering and Slurm's answers, parsed: no cluster needed."""

from __future__ import annotations

from pathlib import Path

from lembench.runtimes.slurm_acct import parse_sacct, parse_scontrol
from lembench.runtimes.slurm_script import (
    ArrayChunk,
    SlurmOptions,
    chunk_launches,
    gpus_for_experiment,
    gpus_for_launch,
    render_script,
)


def test_gpus_come_from_tensor_and_pipeline_parallelism() -> None:
    vllm = {"backend": "vllm", "vllm": {"tensor_parallel_size": 4, "pipeline_parallel_size": 2}}
    assert gpus_for_experiment(vllm) == 8
    assert gpus_for_experiment({"backend": "vllm", "vllm": {}}) == 1
    trt = {"backend": "tensorrt-llm", "tensorrt": {"tp_size": 2, "pp_size": None}}
    assert gpus_for_experiment(trt) == 2
    assert gpus_for_experiment({"backend": "pytorch", "device": "cuda:0"}) == 1
    assert gpus_for_experiment({"backend": "pytorch", "device": "cpu"}) == 0
    configs = [vllm, {"backend": "pytorch", "device": "cuda"}]
    assert gpus_for_launch(configs, SlurmOptions()) == 8
    assert gpus_for_launch(configs, SlurmOptions(gpus=1)) == 1  # the option wins


def test_chunks_split_at_max_array_size_and_gpu_count() -> None:
    chunks = chunk_launches([0] * 10_000, 1001)
    assert len(chunks) == 10  # 10,000 launches: 10 sbatch calls, not 10,000
    assert chunks[0] == ArrayChunk(0, 1001, 0) and chunks[-1] == ArrayChunk(9009, 991, 0)
    assert sum(c.size for c in chunks) == 10_000
    assert chunk_launches([1, 1, 2, 2, 2, 1], 1001) == [
        ArrayChunk(0, 2, 1),
        ArrayChunk(2, 3, 2),
        ArrayChunk(5, 1, 1),
    ]
    assert chunk_launches([], 1001) == []


def test_script_has_the_options_throttle_and_task_command(tmp_path: Path) -> None:
    options = SlurmOptions.from_settings(
        {"partition": "gpu", "account": "proj", "time": "01:00:00", "throttle": 4, "extra": []},
        {"qos": "high", "extra": ["--exclusive", "#SBATCH --mail-type=END"], "partition": None},
    )
    script = render_script(
        ArrayChunk(1001, 50, 2), options, tmp_path / "inv", "my suite", "/opt/py", {"A": "b c"}
    )
    lines = script.text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in (
        "#SBATCH --array=0-49%4",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --qos=high",
        "#SBATCH --time=01:00:00",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --exclusive",
        "#SBATCH --mail-type=END",
        "#SBATCH --job-name=lembench-my_suite",
        f"#SBATCH --output={tmp_path}/inv/tasks/slurm-%A_%a.out",
        "export A='b c'",
        f"exec /opt/py -m lembench.runtimes.slurm_task {tmp_path}/inv 1001",
    ):
        assert line in lines, line
    assert not any(line.startswith("#SBATCH --constraint") for line in lines)
    assert script.name == "array-001001.sbatch" and len(script.sha256) == 64
    cpu = render_script(ArrayChunk(0, 1, 0), SlurmOptions(), tmp_path, "s", "py")
    assert "--gres" not in cpu.text and "#SBATCH --array=0-0" in cpu.text


SCONTROL = (
    "JobId=3 ArrayJobId=2 ArrayTaskId=0 JobName=t.sh UserId=root(0) JobState=COMPLETED "
    "Reason=None Dependency=(null) ExitCode=0:0 Partition=debug NodeList=vm BatchHost=vm\n"
    "JobId=4 ArrayJobId=2 ArrayTaskId=1 JobName=t.sh JobState=CANCELLED Reason=None "
    "ExitCode=0:15 Partition=debug NodeList=vm\n"
    "JobId=2 ArrayJobId=2 ArrayTaskId=2-3%1 JobName=t.sh JobState=PENDING Reason=JobArrayTaskLimit"
    " ExitCode=0:0 Partition=debug NodeList=(null)\n"
)


def test_parse_scontrol_expands_pending_ranges() -> None:
    tasks = {t.task_id: t for t in parse_scontrol(SCONTROL)}
    assert sorted(tasks) == [0, 1, 2, 3]
    assert tasks[1].state == "CANCELLED" and tasks[1].exit_code == "0:15" and tasks[1].terminal
    assert tasks[3].pending and tasks[3].node is None and tasks[3].reason == "JobArrayTaskLimit"
    assert "State=CANCELLED ExitCode=0:15" in tasks[1].describe()


def test_parse_sacct_skips_steps_and_keeps_the_base_state() -> None:
    text = (
        "12_0|COMPLETED|0:0|None|n1|gpu\n"
        "12_0.batch|COMPLETED|0:0||n1|\n"
        "12_1|CANCELLED by 1000|0:15|None|n2|gpu\n"
        "12_2|OUT_OF_MEMORY|0:125|OutOfMemory|n1|gpu\n"
        "12_[3-4%2]|PENDING|0:0|JobArrayTaskLimit|None assigned|gpu\n"
    )
    tasks = {t.task_id: t for t in parse_sacct(text)}
    assert sorted(tasks) == [0, 1, 2, 3, 4]
    assert tasks[1].state == "CANCELLED" and tasks[1].node == "n2"
    assert tasks[2].state == "OUT_OF_MEMORY" and tasks[2].source == "sacct"
    assert tasks[4].pending and tasks[4].node is None
