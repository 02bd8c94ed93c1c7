"""The measured window: timeline sampling, idle baseline, warmup, metrics, phase attribution,
window checks, scoring, FLOPs and latency statistics, and ``measure`` which runs one experiment.
"""
