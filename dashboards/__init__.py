"""Grafana dashboards as code: built from the metric catalog and the thresholds object."""
