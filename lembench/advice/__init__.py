"""Advice from the user's own measurements: ``lembench advise`` (the configuration to use, what
each lever changed, pitfalls), ``lembench estimate`` (monthly kWh, cost and CO2) and
``lembench audit`` (static checks of inference code and suites, with measured evidence).

Modules: ``data`` (stored runs -> experiments), ``scenarios`` (latency targets), ``compare``
(like-with-like keys, changes), ``levers``, ``pitfalls``, ``suggest`` (experiments to run),
``advise``, ``estimate``, ``audit`` (+ ``audit_python``, ``audit_suite``), ``render`` (terminal
output) and ``commands`` (click). Nothing here imports an engine or a model.
"""
