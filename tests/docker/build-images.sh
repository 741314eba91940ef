#!/usr/bin/env bash
# Build the test images locally from Debian's packages; nothing is pulled from a registry.
#
#   tests/docker/build-images.sh         build what is missing (DOCKER_HOST must point at an engine)
#   tests/docker/build-images.sh --tag   print the tag the current inputs give, build nothing
#
# 1. kqueue-test/base:<hash of its inputs>: a `debootstrap --variant=minbase` root file system of
#    the machine's own Debian release, from the mirror its apt sources already use, brought in
#    with `docker import`.
# 2. kqueue-test/{beanstalkd,redis,postgres}:<tag>: tests/docker/images/*/Dockerfile on top of
#    the base, each apt-get installing its server.
# Tags are hashes of the inputs, so an image is rebuilt only when what it is built from changed,
# and a second run builds nothing.
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")"

DOCKER_BIN=${DOCKER_BIN:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
IMAGES=(beanstalkd redis postgres)
log() { printf '== images: %s\n' "$*" >&2; }
dock() { DOCKER_BUILDKIT=0 "$DOCKER_BIN" "$@"; }

# The release and the main archive the machine's apt already uses (so the same reachable mirror).
suite() { . /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"; }
mirror() {
  if [ -n "${KQUEUE_DEBIAN_MIRROR:-}" ]; then echo "$KQUEUE_DEBIAN_MIRROR"; return; fi
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list
  do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0  # debootstrap then uses its own default
  awk '/^[[:space:]]*(URIs:|deb )/ && !found {
    for (i = 1; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; found = 1; break }
  }' "${files[@]}" </dev/null
}

base_tag() {
  { suite; mirror; sed -n '/^base_image()/,/^}/p' "$SELF"; } | sha256sum | cut -c1-12
}
images_tag() {
  { base_tag; cat "$SELF"; find images -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-12
}
have() { dock image inspect "$1" >/dev/null 2>&1; }

base_image() {
  local image=$1 root
  root=$(mktemp -d /var/tmp/kqueue-base.XXXXXX)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$root'" RETURN
  log "debootstrap --variant=minbase $(suite) from $(mirror)"
  debootstrap --variant=minbase "$(suite)" "$root" "$(mirror)" >"$root.log" 2>&1 ||
    { tail -n 20 "$root.log" >&2; return 1; }
  rm -f "$root.log"
  # Packages must not try to start their services while an image is built.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | dock import - "$image" >/dev/null
}

build_all() {
  local base tag name
  base="kqueue-test/base:$(base_tag)"
  tag=$(images_tag)
  have "$base" || { time_it "$base" base_image "$base"; }
  for name in "${IMAGES[@]}"; do
    have "kqueue-test/$name:$tag" && continue
    # No bridge on our engine: the build's apt-get reaches the mirror through the host network.
    time_it "kqueue-test/$name:$tag" dock build --quiet --network host --build-arg "BASE=$base" \
      -t "kqueue-test/$name:$tag" "images/$name" >/dev/null
  done
  log "ready: kqueue-test/{$(IFS=,; echo "${IMAGES[*]}")}:$tag"
  prune_old "$base" "$tag"
}

# Images of older inputs take disk (PostgreSQL's is ~600 MB) and will never be used again.
prune_old() {
  local base=$1 tag=$2 image
  dock images --format '{{.Repository}}:{{.Tag}}' | while read -r image; do
    case "$image" in
      "$base" | kqueue-test/*:"$tag") ;;
      kqueue-test/*) dock rmi "$image" >/dev/null 2>&1 && log "removed old $image" ;;
    esac
  done
}

time_it() {
  local what=$1 start=$SECONDS
  shift
  log "building $what"
  "$@"
  log "built $what in $((SECONDS - start)) s"
}

case "${1:-}" in
  --tag) images_tag ;;
  "") build_all ;;
  *) sed -n '2,5p' "$SELF" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
