# One image for every RingRift process. The project is installed from wheels built on
# the host (scripts/build-wheels.sh), so the build needs neither the source tree nor a
# package index. BASE_IMAGE defaults to the official Python image; offline machines
# pass a locally built one.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG WHEELHOUSE=dist/wheelhouse
COPY ${WHEELHOUSE} /tmp/wheelhouse
RUN python3 -m pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse ringrift-orchestrator \
    && rm -rf /tmp/wheelhouse \
    && useradd --system --create-home --home-dir /var/lib/ringrift --uid 10001 ringrift \
    && mkdir -p /data && chown ringrift /data

USER ringrift
WORKDIR /var/lib/ringrift
ENV RINGRIFT_SERVER__HOST=0.0.0.0 \
    RINGRIFT_METRICS__HOST=0.0.0.0 \
    RINGRIFT_LOGGING__FORMAT=json
# Each service's healthcheck (compose.yaml) asks its own port through gRPC health.
CMD ["ringrift", "--help"]
