# syntax=docker/dockerfile:1
# grenswacht's one image: every component runs from it with a different command
# (helm/grenswacht sets `grenswacht schedule`, `grenswacht consume ingest`, ...).
#
#   docker build -t grenswacht:0.1.0 .                          # runtime (default)
#   docker build --target scamper -t grenswacht:0.1.0-scamper . # + scamper with cap_net_raw
#
# Pin the base by digest when you build a release, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- build: a virtualenv with grenswacht and its pinned dependencies ------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/grenswacht
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY consumers/ consumers/
COPY scheduler/ scheduler/
COPY probes/ probes/
COPY grenswacht/ grenswacht/
# Dependencies are pinned (==) in pyproject.toml; a non-editable install copies the
# packages (and their .sql/.json data) into the venv, so /src is not needed at run time.
RUN /opt/grenswacht/bin/pip install . \
 && /opt/grenswacht/bin/grenswacht --help >/dev/null

# -- runtime: non-root, no compiler, no pip cache -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 grenswacht \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/grenswacht \
      --no-create-home --shell /usr/sbin/nologin grenswacht \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/grenswacht /etc/grenswacht
COPY --from=build /opt/grenswacht /opt/grenswacht
ENV PATH=/opt/grenswacht/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    GRENSWACHT_DATA_DIR=/var/lib/grenswacht
USER 10001:10001
WORKDIR /var/lib/grenswacht
# /healthz and /metrics of every component
EXPOSE 9464
ENTRYPOINT ["grenswacht"]
CMD ["--help"]

# -- scamper: the probe variant for ICMP/TCP Paris traceroute over raw sockets --------------
# scamper gets cap_net_raw as a *file* capability: only that binary can open raw sockets,
# and only when the container keeps NET_RAW in its bounding set (the chart adds exactly that).
FROM runtime AS scamper
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends scamper libcap2-bin \
 && setcap cap_net_raw+ep /usr/bin/scamper \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001

# The default target (`docker build .` without --target) is the rootless runtime.
FROM runtime AS default
