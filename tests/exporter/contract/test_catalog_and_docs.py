"""The catalog is well formed, the docs are generated from it, and the renderer obeys it."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import Series
from exporter.contract import docs
from exporter.contract.catalog import FAMILIES, VLLM_LABELS, family
from exporter.render import SnapshotCollector, new_registry, render


def test_names_units_and_types_follow_prometheus_conventions() -> None:
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    for f in FAMILIES:
        assert re.fullmatch(r"kvscale_(gpu|vllm|exporter)_[a-z0-9_]+", f.name)
        assert f.name.startswith(f"kvscale_{f.subsystem}_")
        assert f.name.endswith("_total") == (f.type == "counter")
        if f.unit == "ratio":
            assert f.name.endswith("_ratio")
        if f.unit == "seconds":
            assert f.name.endswith("_seconds")
        assert f.help.endswith(".")


def test_design_families_are_all_in_the_catalog() -> None:
    for name in ("kvscale_vllm_kv_cache_fragmentation_ratio", "kvscale_vllm_saturation_ratio",
                 "kvscale_gpu_xid_errors_total", "kvscale_exporter_build_info"):
        assert family(name)
    with pytest.raises(KeyError, match="not in the kvscale metric catalog"):
        family("kvscale_vllm_nope")


def test_docs_metrics_md_is_generated_from_the_catalog() -> None:
    # That the committed file equals docs.render() is the drift test's (tests/deploy/test_generate.py).
    for f in FAMILIES:
        assert f"`{f.name}`" in docs.DOC_PATH.read_text()


def test_renderer_emits_catalog_help_and_order_and_fills_missing_labels() -> None:
    snapshot = SnapshotCollector()
    snapshot.update([
        Series("kvscale_vllm_saturation_ratio", {"namespace": "n", "pod": "p", "model_name": "m"}, 0.5),
        Series("kvscale_vllm_up", {"namespace": "n", "pod": "p"}, 1.0),
        Series("kvscale_vllm_up", {"namespace": "n", "pod": "p"}, 0.0),  # duplicate: first wins
    ])
    text = render(new_registry(snapshot)).decode()
    parsed = list(text_string_to_metric_families(text))
    assert [f.name for f in parsed] == ["kvscale_vllm_up", "kvscale_vllm_saturation_ratio"]
    assert parsed[0].documentation == family("kvscale_vllm_up").help
    assert parsed[0].samples[0].labels == {"namespace": "n", "pod": "p", "model_name": ""}
    assert parsed[0].samples[0].value == 1.0
    assert set(parsed[1].samples[0].labels) == set(VLLM_LABELS)


def test_renderer_refuses_series_outside_the_catalog() -> None:
    snapshot = SnapshotCollector()
    with pytest.raises(ValueError, match="unknown family"):
        snapshot.update([Series("kvscale_vllm_made_up", {}, 1.0)])
    with pytest.raises(ValueError, match="not in the catalog"):
        snapshot.update([Series("kvscale_vllm_up", {"node": "x"}, 1.0)])
