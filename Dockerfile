# One image for every RingRift process. The project is installed from wheels built on
# the host (scripts/build-wheels.sh), so the build needs neither the source tree nor a
# package index. BASE_IMAGE defaults to the official Python image; machines without a
# registry pass a locally built one (scripts/build-images.sh makes it with debootstrap).
# Any base with Python 3.11+ and its venv module works.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="ringrift-orchestrator" \
      org.opencontainers.image.description="RingRift Orchestrator: every control-plane process and the node agent"

ARG WHEELHOUSE=dist/wheelhouse
COPY ${WHEELHOUSE} /tmp/wheelhouse
RUN python3 -m venv /opt/ringrift \
    && /opt/ringrift/bin/python -m pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse ringrift-orchestrator \
    && rm -rf /tmp/wheelhouse \
    && useradd --system --create-home --home-dir /var/lib/ringrift --uid 10001 ringrift \
    && mkdir -p /data && chown ringrift /data

USER ringrift
WORKDIR /var/lib/ringrift
ENV PATH=/opt/ringrift/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RINGRIFT_SERVER__HOST=0.0.0.0 \
    RINGRIFT_METRICS__HOST=0.0.0.0 \
    RINGRIFT_LOGGING__FORMAT=json
# gRPC health of the process in this container over its own certificate
# (HEALTHCHECK_PORT: its gRPC port; compose.yaml sets the check per service). The probe
# exits 0 only when SERVING and costs ~0.25 s of CPU (the `ringrift` CLI ~0.7 s).
HEALTHCHECK --interval=5s --timeout=10s --start-period=10s --retries=12 \
    CMD python -m ringrift_cli.probe "127.0.0.1:${HEALTHCHECK_PORT:-50050}" >/dev/null || exit 1
CMD ["ringrift", "--help"]
