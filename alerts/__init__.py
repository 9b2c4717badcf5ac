"""kvscale's Prometheus alerting and recording rules, generated from the thresholds (mixin style)."""
