"""Fake vllm.distributed.parallel_state: counts calls of the release helper."""

CALLS: list[bool] = []


def cleanup_dist_env_and_memory(shutdown_ray: bool = False) -> None:
    CALLS.append(shutdown_ray)
