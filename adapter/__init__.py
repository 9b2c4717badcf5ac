"""kvscale-adapter: a custom.metrics.k8s.io server that feeds vLLM scaling signals to the HPA."""
