"""``kvscale-dashboards``: build, drift check, thresholds file, preview errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboards.cli import main
from tests.conftest import free_port


def test_build_writes_every_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["autoscaling.json", "engine.json", "fleet.json", "gpu.json"]
    assert str(tmp_path / "out" / "fleet.json") in capsys.readouterr().out


def test_thresholds_file_changes_the_lines_and_check_catches_drift(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("kv_cache_usage_alert: 0.91\n")
    assert main(["build", str(tmp_path / "custom"), "--thresholds", str(thresholds)]) == 0
    fleet = json.loads((tmp_path / "custom" / "fleet.json").read_text())
    kv = next(p for p in fleet["panels"] if p["title"] == "KV cache usage per pod")
    assert [s["value"] for s in kv["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.75, 0.91]
    assert main(["build", str(tmp_path / "custom"), "--check", "--thresholds", str(thresholds)]) == 0
    assert main(["build", str(tmp_path / "custom"), "--check"]) == 1


def test_thresholds_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("queue_target: 9\n")
    monkeypatch.setenv("KVSCALE_THRESHOLDS_FILE", str(thresholds))
    assert main(["build", str(tmp_path / "out")]) == 0
    assert '"value": 9' in (tmp_path / "out" / "fleet.json").read_text()


@pytest.mark.parametrize(("content", "message"), [
    ("kv_cache_usage_alert: 1.5\n", "ratio must be in (0, 1]"),
    ("no_such_threshold: 1\n", "unknown thresholds: no_such_threshold"),
])
def test_bad_thresholds_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              content: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    assert main(["build", str(tmp_path / "out"), "--thresholds", str(bad)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_preview_without_prometheus_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["preview", "--prometheus-url", url, "--out", str(tmp_path)]) == 2
    assert "cannot query" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
