# kvscale: one image runs every command (kvscale-exporter, kvscale-adapter, kvscale-alerts,
# kvscale-dashboards, kvscale-demo); the Helm chart picks the command per container.
# Build: docker build -t ghcr.io/kvscale/kvscale:0.1.0 .

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY adapter ./adapter
COPY alerts ./alerts
COPY dashboards ./dashboards
COPY simulator ./simulator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# The wheel and its dependencies go into a venv; pip runs only while building.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/kvscale \
    && /opt/kvscale/bin/pip install --no-cache-dir --disable-pip-version-check /wheels/kvscale-0.1.0-py3-none-any.whl
ENV PATH=/opt/kvscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so runAsNonRoot can verify it without an /etc/passwd entry.
USER 65532:65532
EXPOSE 9400 6443
ENTRYPOINT ["kvscale-exporter"]
