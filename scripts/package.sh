#!/usr/bin/env bash
# Builds the Debian packages into target/packages (or $SQUAWK_PACKAGES):
#   squawk-server_VERSION_ARCH.deb  the server: binary, /etc/squawk/server.toml,
#                                   a hardened systemd unit, its own user
#   Squawk_VERSION_ARCH.deb         the desktop app (package `squawk`), through
#                                   the Tauri bundler (desktop entry, icons)
# Usage: scripts/package.sh [--server-only] [--prebuilt DIR]
# The default is both packages from a release build. --prebuilt DIR (with
# --server-only) packages the squawk-server binary found in DIR as it is,
# e.g. the test build's (tests/package_e2e.rs installs that package in a
# clean Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

prebuilt=""
server_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --server-only) server_only=true ;;
    --prebuilt) prebuilt="$2"; shift ;;
    *) echo "usage: $0 [--server-only] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$prebuilt" ] && [ "$server_only" = false ]; then
  echo "package: --prebuilt needs --server-only (the desktop package is built by the Tauri CLI)" >&2
  exit 2
fi

target="${CARGO_TARGET_DIR:-$PWD/target}"
out="${SQUAWK_PACKAGES:-$target/packages}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
mkdir -p "$out"

if [ -n "$prebuilt" ]; then
  bin="$prebuilt/squawk-server"
else
  cargo build --release --locked -p squawk-server --bin squawk-server
  bin="$target/release/squawk-server"
fi
[ -x "$bin" ] || { echo "package: $bin is missing" >&2; exit 1; }

# ---------- squawk-server ----------
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/bin/squawk-server"
install -D -m 0644 packaging/server/server.toml "$root/etc/squawk/server.toml"
install -D -m 0644 packaging/server/default "$root/etc/default/squawk-server"
install -D -m 0644 packaging/server/squawk-server.service \
  "$root/lib/systemd/system/squawk-server.service"
install -D -m 0644 docs/server.md "$root/usr/share/doc/squawk-server/server.md"
install -D -m 0644 docs/protocol.md "$root/usr/share/doc/squawk-server/protocol.md"
install -D -m 0644 docs/api.md "$root/usr/share/doc/squawk-server/api.md"
install -d "$root/DEBIAN"
install -m 0755 packaging/server/postinst packaging/server/prerm packaging/server/postrm "$root/DEBIAN/"
printf '/etc/squawk/server.toml\n/etc/default/squawk-server\n' > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: squawk-server
Version: $version
Architecture: $arch
Maintainer: Squawk developers <squawk@example.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, passwd
Section: net
Priority: optional
Homepage: https://example.invalid/squawk
Description: Squawk push-to-talk server
 WebSocket signaling, an SFU that forwards Opus without transcoding,
 per-channel floor control (3GPP TS 24.380 terms), accounts and TLS, and
 the browser client. Runs as the systemd service squawk-server under its
 own user; configuration in /etc/squawk/server.toml, state in
 /var/lib/squawk.
CONTROL
deb="$out/squawk-server_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "package: $deb"

# ---------- squawk (desktop) ----------
if [ "$server_only" = false ]; then
  # The Tauri CLI from npm (a prebuilt binary); it builds the app with the
  # bundle enabled and writes the .deb under $target/$profile/bundle/deb.
  # libasound2: cpal's ALSA (the bundler adds WebKitGTK, GTK and the
  # tray's appindicator by itself).
  npx --yes @tauri-apps/cli@2 build --bundles deb --config '{"bundle":{"active":true,
    "targets":["deb"], "publisher":"Squawk developers",
    "shortDescription":"Push-to-talk voice: channels, floor control, dispatcher console",
    "longDescription":"Squawk desktop walkie-talkie: hold a global key or a USB pedal to talk into a channel of a squawk-server; listen to several channels; dispatcher console with floor priority, emergencies and patches.",
    "linux":{"deb":{"section":"sound","depends":["libasound2"]}}}}'
  for f in "$target/release/bundle/deb/"*.deb; do
    cp "$f" "$out/"
    echo "package: $out/$(basename "$f")"
  done
fi
