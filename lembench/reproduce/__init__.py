"""``lembench reproduce``: re-measure published LLM-energy claims and judge them fairly.

One folder per study under ``suites/reproductions/<study-id>/``: ``suite.yaml`` (a normal suite
named ``repro-<study-id>``) and ``reference.yaml`` (the published data, validated against
``schemas/reference.schema.json``). Modules: ``reference`` (finding and validating studies),
``measured`` (summaries of the stored runs), ``compare`` (the fair comparisons and verdicts),
``record`` (the append-only JSON record of each comparison), ``display`` (terminal tables) and
``commands`` (the click command).
"""
