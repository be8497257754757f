#!/usr/bin/env bash
# Builds the real OpenZeppelin Relayer from its unmodified source into a cache outside the checkout, keyed by
# the source's hash; a second run with the same source is a no-op. Prints the binary's path on stdout.
#
# Source: $MSQ_OZ_RELAYER_SRC (a checkout or a `git archive` .tar.gz), else the vendored archive at
# ../shared/vendor/openzeppelin-relayer-1.8.0.tar.gz beside the checkout. With neither, prints nothing and
# exits 0 (the OZ-engine tests then skip and say how to enable them). A vendored archive must match the
# pinned sha256. Nothing of OZ's source is copied into the project tree.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
oz_version=1.8.0
pinned_sha256=edf057afdfc7d1b605dc8860dc734360cac6d70a3bb31f61de94251b6e9e4fd3
default_archive="$repo/../shared/vendor/openzeppelin-relayer-${oz_version}.tar.gz"
src="${MSQ_OZ_RELAYER_SRC:-$default_archive}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/msq-relayer"

if [[ ! -e "$src" ]]; then
  echo "OZ Relayer source not found ($src): set MSQ_OZ_RELAYER_SRC to a checkout or archive of" \
       "openzeppelin-relayer v${oz_version} to build the real engine; skipping" >&2
  exit 0
fi

if [[ -f "$src" ]]; then
  key="$(sha256sum "$src" | cut -d' ' -f1)"
  if [[ -z "${MSQ_OZ_RELAYER_SRC:-}" && "$key" != "$pinned_sha256" ]]; then
    echo "vendored archive $src has sha256 $key, expected $pinned_sha256" >&2
    exit 1
  fi
else
  # A checkout: key by the content of every tracked-looking file, so an edit rebuilds.
  key="$(cd "$src" && find . -path ./target -prune -o -path ./.git -prune -o -type f -print0 | sort -z \
         | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
fi
out="${MSQ_OZ_RELAYER_BIN_DIR:-$cache_root/oz-relayer-${oz_version}-${key:0:12}}"
bin="$out/openzeppelin-relayer"
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi

# Two builds of the same source at once (say `make -j` beside a running `make deps`) would share one work
# folder: the second waits for the first, then finds its binary.
mkdir -p "$cache_root"
exec 9>"$cache_root/oz-relayer-${key:0:12}.lock"
flock 9
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi

command -v cargo >/dev/null || { echo "cargo not found (needed once to build OZ Relayer ${oz_version})" >&2; exit 1; }
# OZ links against libsodium (its `secrets` crate) and OpenSSL, as its own Dockerfile installs.
missing=()
for pkg in libsodium-dev libssl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo=sudo
  echo "installing ${missing[*]} ..." >&2
  $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

work="$cache_root/oz-relayer-build-${key:0:12}"
mkdir -p "$work"
if [[ -f "$src" ]]; then
  [[ -f "$work/src/Cargo.toml" ]] || { mkdir -p "$work/src" && tar -xzf "$src" -C "$work/src"; }
  # A `git archive` may or may not hold a top-level folder.
  srcdir="$(dirname "$(find "$work/src" -maxdepth 2 -name Cargo.lock | head -1)")"
else
  srcdir="$src"
fi
echo "building openzeppelin-relayer ${oz_version} from $src (cold: about 17 min on 2 cores) ..." >&2
start=$(date +%s)
# The pinned rust-toolchain.toml names a toolchain that cannot be downloaded here; the installed stable one
# meets OZ's MSRV. Without pnpm, OZ's build.rs skips the TypeScript plugins (not needed for EVM relaying).
(cd "$srcdir" && RUSTUP_TOOLCHAIN=stable CARGO_TARGET_DIR="$work/target" \
  cargo build --release --locked --bin openzeppelin-relayer >&2)
mkdir -p "$out.tmp"
cp "$work/target/release/openzeppelin-relayer" "$out.tmp/"
# OZ's own network definitions, for the devstack's network config (read at run time, never copied in-tree).
cp -r "$srcdir/config/networks" "$out.tmp/networks"
rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$work"
echo "built in $(( $(date +%s) - start )) s: $bin ($(du -h "$bin" | cut -f1))" >&2
echo "$bin"
