#!/usr/bin/env bash
# ./setup criu: a working CRIU for jaula's live migration, on Debian 12 (run as root).
#
# Debian 12's criu 3.17 cannot dump on current kernels (it fails reading the vDSO); CRIU 4.1.1,
# the version of Debian 13 (trixie), works. This builds it from trixie's source package with
# build dependencies from Debian 12, and installs it under a prefix jaula owns:
#
#   /usr/local/lib/jaula/criu/sbin/criu     (JAULA_CRIU_PREFIX moves it)
#
# Nothing of Debian's is replaced or shadowed (it is not put on PATH: jaula runs it by its path,
# `runc --criu PATH checkpoint|restore`), and nothing but trixie's *sources* is added to apt:
# /etc/apt/sources.list.d/jaula-criu-src.sources, a deb-src entry, so no binary package can come
# from trixie. The build is cached: the installed tree itself (checked with `criu check` on every
# run: a second run takes a second or two) and a tarball of it in /var/cache/jaula/criu
# (JAULA_CRIU_CACHE), with the source tarball, so a removed prefix comes back without a rebuild.
# A cold build (packages, source, compile, check) took 3 min 12 s on the 2-core VM under load
# (the compile alone: 1 min at load 7).
#
# Only the upstream tarball of the source package (criu_4.1.1.orig.tar.xz, checked by apt against
# trixie's signed Sources index and here against its SHA-256) is used, built with upstream's
# Makefile: Debian's packaging (the .dsc and debian.tar.xz; this mirror does not even serve them)
# is not needed for the criu binary. jaula's own patches in scripts/criu/patches/ are applied in
# order (each says why; 0001: 4.1.1 cannot dump a TCP socket on Linux 6.16+); changing one
# rebuilds.
set -euo pipefail
# jaula's ./setup gives say, die and apt_install (sourced, it does nothing else).
# shellcheck source=../setup
REPO_DIR=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")
source "$REPO_DIR/setup"

CRIU_VERSION=4.1.1
CRIU_DEBIAN_VERSION=4.1.1-1
CRIU_ORIG=criu_${CRIU_VERSION}.orig.tar.xz
CRIU_ORIG_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
PREFIX=${JAULA_CRIU_PREFIX:-/usr/local/lib/jaula/criu}
CACHE=${JAULA_CRIU_CACHE:-/var/cache/jaula/criu}
SOURCES=/etc/apt/sources.list.d/jaula-criu-src.sources
# Debian 12's packages that building criu needs (the C libraries stay installed: criu links them).
CRIU_BUILD_PACKAGES=(gcc make patch pkg-config xz-utils libbsd-dev libcap-dev libgnutls28-dev libnet1-dev
  libnftables-dev libnl-3-dev libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev
  nftables iptables)
# What the prototypes in scripts/criu/ use besides jaula's own packages.
CRIU_LAB_PACKAGES=(jq perl-base)
ARCH=$(dpkg --print-architecture)
PATCHES=("$REPO_DIR"/scripts/criu/patches/*.patch)
STAMP="criu $CRIU_VERSION $CRIU_ORIG_SHA256 $ARCH prefix=$PREFIX patches=$(cat "${PATCHES[@]}" | sha256sum | cut -c1-16)"
BUILT=$CACHE/criu-$CRIU_VERSION-$ARCH.tar

T0=$(date +%s%N)
work=
elapsed() { echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms"; }

# `criu check` checks the kernel, not only the binary: a host where it fails cannot migrate live.
check() {
  local out
  if ! out=$("$PREFIX/sbin/criu" check 2>&1); then
    printf '%s\n' "$out" >&2
    die "CRIU $CRIU_VERSION is installed in $PREFIX but \"criu check\" fails on this kernel (above): live migration is not possible here"
  fi
}

installed() {
  [ -x "$PREFIX/sbin/criu" ] && [ "$(cat "$PREFIX/.jaula-stamp" 2>/dev/null)" = "$STAMP" ] &&
    "$PREFIX/sbin/criu" --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION"
}

# The source tarball from trixie's source package, into the cache (once).
fetch_source() {
  local f=$CACHE/$CRIU_ORIG
  if [ -f "$f" ] && echo "$CRIU_ORIG_SHA256  $f" | sha256sum -c --status; then return 0; fi
  if [ ! -f "$SOURCES" ]; then
    say "Adding Debian trixie's source packages to apt ($SOURCES: deb-src only, nothing installs from it)"
    cat >"$SOURCES" <<'EOF'
# Added by jaula's ./setup criu: Debian 13's source packages, to build CRIU 4.1 on Debian 12.
# Sources only (deb-src): no binary package comes from trixie, nothing is pinned to it.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  if ! apt-cache showsrc "criu=$CRIU_DEBIAN_VERSION" 2>/dev/null | grep -q "^Version: $CRIU_DEBIAN_VERSION$"; then
    apt-get update -qq || die "apt-get update failed: check the network and $SOURCES"
  fi
  local tmp
  tmp=$(mktemp -d "$CACHE/src.XXXXXX")
  chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where it can
  say "Downloading CRIU $CRIU_VERSION's source (Debian trixie's source package criu $CRIU_DEBIAN_VERSION)"
  # --tar-only: the upstream tarball, checked by apt against trixie's signed Sources index.
  (cd "$tmp" && apt-get source -qq --tar-only "criu=$CRIU_DEBIAN_VERSION") >&2 ||
    die "could not download criu $CRIU_DEBIAN_VERSION's source: is trixie's Sources index reachable ($SOURCES)?"
  echo "$CRIU_ORIG_SHA256  $tmp/$CRIU_ORIG" | sha256sum -c --status ||
    die "$CRIU_ORIG does not have the expected SHA-256 ($CRIU_ORIG_SHA256)"
  mv "$tmp/$CRIU_ORIG" "$f"
  rm -rf "$tmp"
}

build() {
  apt_install "${CRIU_BUILD_PACKAGES[@]}"
  fetch_source
  work=$(mktemp -d /tmp/jaula-criu-build.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  tar -xJf "$CACHE/$CRIU_ORIG" -C "$work"
  local src=$work/criu-$CRIU_VERSION p
  for p in "${PATCHES[@]}"; do
    patch -d "$src" -p1 -s <"$p" || die "the patch $p does not apply to CRIU $CRIU_VERSION"
  done
  say "Building CRIU $CRIU_VERSION (a minute or more on 2 cores)"
  if ! make -C "$src" -j"$(nproc)" PREFIX="$PREFIX" criu >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log" >&2
    die "building CRIU failed (the end of its log is above)"
  fi
  make -C "$src" PREFIX="$PREFIX" DESTDIR="$work/dest" install-criu >>"$work/build.log" 2>&1 ||
    die "installing CRIU into a staging directory failed"
  echo "$STAMP" >"$work/dest$PREFIX/.jaula-stamp"
  tar -C "$work/dest$PREFIX" -cf "$BUILT.tmp" . && mv "$BUILT.tmp" "$BUILT"
  rm -rf "$work"
}

# The cached build, put in place atomically (a half-copied prefix is never left).
install_built() {
  apt_install "${CRIU_BUILD_PACKAGES[@]}" # its shared libraries
  local stage=$PREFIX.new.$$
  rm -rf "$stage"
  mkdir -p "$stage"
  tar -C "$stage" -xf "$BUILT"
  rm -rf "$PREFIX.old"
  [ -e "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
  mv "$stage" "$PREFIX"
  rm -rf "$PREFIX.old"
}

main() {
  need_root criu
  mkdir -p "$CACHE" "$(dirname "$PREFIX")"
  exec 9>"$CACHE/.lock"
  flock 9 # two setups at once: the second finds the first's result
  apt_install "${CRIU_LAB_PACKAGES[@]}"
  if installed; then
    check
    say "CRIU $CRIU_VERSION is installed: $PREFIX/sbin/criu (criu check passed; $(elapsed))"
    return 0
  fi
  if [ ! -f "$BUILT" ] || [ "$(tar -xOf "$BUILT" ./.jaula-stamp 2>/dev/null)" != "$STAMP" ]; then build; fi
  install_built
  installed || die "the CRIU installed in $PREFIX is not the one built ($STAMP)"
  check
  say "CRIU $CRIU_VERSION is installed: $PREFIX/sbin/criu (criu check passed; $(elapsed)); runc uses it as: runc --criu $PREFIX/sbin/criu checkpoint ..."
}

main "$@"
