# One image for both entry points: `msq-operator run` (the operator Deployment of the Helm chart) and
# `msq-gateway` (the per-pool gateways the operator renders).
#
# Dependencies come from requirements-runtime.lock: the runtime part of requirements.lock (the list the
# tests run against), with identical pins (tests/unit/test_packaging_locks.py), installed the same way
# `make` installs the test venv, minus the dev extras.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
# Same uv as the Makefile's, so resolution of the pinned list behaves identically.
RUN python -m pip install --no-cache-dir uv==0.13.8 \
 && python -m venv /opt/msq
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes, not on every code change.
COPY requirements-runtime.lock ./
RUN uv pip install --python /opt/msq/bin/python -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY gateway/ gateway/
COPY devrelayer/ devrelayer/
COPY devstack/ devstack/
COPY contracts/msq_contracts/ contracts/msq_contracts/
# The project itself, not editable, against the pins already installed.
RUN uv pip install --python /opt/msq/bin/python -r requirements-runtime.lock . \
 && /opt/msq/bin/python -c "import msq_operator.handlers, msq_gateway.app"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="msq-relayer" \
      org.opencontainers.image.description="MSQ Relayer operator and gateway" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid, so runAsNonRoot can verify it without resolving names (the chart uses 10001).
RUN groupadd --system --gid 10001 msq \
 && useradd --system --uid 10001 --gid msq --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin msq
COPY --from=build /opt/msq /opt/msq
ENV PATH=/opt/msq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
# 8080: gateway HTTP and operator liveness; 9090: operator metrics.
EXPOSE 8080 9090
CMD ["msq-operator", "run"]
