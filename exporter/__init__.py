"""kvscale's node exporter: vLLM engines and GPUs on this node -> kvscale_* scaling signals."""

__version__ = "0.1.0"
