#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine: a virtual environment with kvscale and
# (with `test`) its test tools, and Debian's prometheus/promtool unpacked under .tools (no service).
set -euo pipefail
cd "$(dirname "$0")/.."
want_test="${1:-}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if [ "$want_test" = "test" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
else
    .venv/bin/pip install -q --disable-pip-version-check -e .
fi
# Plain setup installs it too: kvscale-demo runs a real Prometheus with the generated rules.
if [ ! -x .tools/prometheus/usr/bin/prometheus ] || [ ! -x .tools/prometheus/usr/bin/promtool ]; then
    tmp="$(mktemp -d)"
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        apt-get update -qq >/dev/null
        (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
    fi
    mkdir -p .tools/prometheus
    dpkg-deb -x "$tmp"/prometheus_*.deb .tools/prometheus
    rm -rf "$tmp"
fi
# iproute2's `ip`: the chaos tests (tests/chaos) build network namespaces and veth pairs.
[ "$want_test" != "test" ] || command -v ip >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq iproute2 >/dev/null; }
# checkov (Kubernetes manifest checks of the Helm chart) in its own venv: its many pinned
# dependencies must not move .venv's. Reinstalled only when the pinned version changes.
CHECKOV_VERSION=3.3.30
if [ "$want_test" = "test" ] && ! compgen -G ".tools/checkov/lib/python3*/site-packages/checkov-$CHECKOV_VERSION.dist-info" >/dev/null; then
    python3 -m venv .tools/checkov
    .tools/checkov/bin/pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
