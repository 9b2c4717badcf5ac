"""The exporter's vLLM wing: targets, scrape, read, window, derive, series.

Read (``scrape``, ``kube_targets``) and pure parse/derive (``reading``, ``window``,
``histogram``, ``derive``, ``series``) are separate modules; ``collector`` ties them
into one collection per cycle.
"""
