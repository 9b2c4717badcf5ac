"""The part of ``exporter`` other packages may import: the contract between kvscale's parts.

- ``catalog``: every ``kvscale_*`` family, its labels and its meaning for the other parts;
- ``policy``: every threshold, SLO, target, alert duration and selector, in one typed object;
- ``settings``: the one settings pattern of the long-running commands (flags, env twins, YAML);
- ``vllm_names``: vLLM's metric names across versions;
- ``exposition``: the Prometheus text-format reader;
- ``docs``: ``docs/metrics.md``, generated from the catalog and the policy;
- ``kube_events``: the Kubernetes list/watch wire format (pure);
- ``kubewatch``: the one hardened list+watch the exporter and the adapter both run;
- ``listener``, ``connection``: the one bounded HTTP server (connection cap, first-header deadline,
  keep-alive, header limits, errors in the server's own format), plain for the exporter, TLS for the adapter;
- ``errorlog``: rate-limited problem logging and the event loop's exception handler.

The import-layer check (``[tool.importlinter]`` in pyproject.toml) keeps the adapter, alerts
and dashboards to this package, and this package to itself; the simulator and the generators
sit on top and may run the real parts.
"""
