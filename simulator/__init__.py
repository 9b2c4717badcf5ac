"""Simulated vLLM engines and the demo: kvscale working on any laptop."""
