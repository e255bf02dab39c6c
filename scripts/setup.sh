#!/usr/bin/env bash
# Installs what Squawk needs on Debian 12: system packages to build and run.
# With --tests, also what the test suite needs: browsers (Debian chromium),
# playwright-core from npm (tests/browser) and a Python virtualenv for the
# audio checks. Idempotent; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  # build: Tauri (WebKitGTK), cpal (ALSA), libpulse (devices), global-hotkey (xdo), C deps (libopus, aws-lc)
  pkg-config cmake libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
  libsoup-3.0-dev libasound2-dev libpulse-dev libxdo-dev libssl-dev
  # audio without a sound card: PulseAudio with null sinks, ALSA routed through it
  pulseaudio pulseaudio-utils libasound2-plugins
  # desktop tests and screenshots
  xvfb xdotool imagemagick dbus-daemon dbus-bin gnome-keyring
  python3-venv
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--tests" ] || [ "${1:-}" = "--tests-no-tools" ]; then
  # Browser-client tests: headless Chromium (playwright-core) and Firefox ESR
  # (geckodriver), with their recommended packages (fonts, codecs) as tested;
  # WebKitWebDriver for the desktop app's WebDriver test (tauri-driver);
  # PostgreSQL, which the accounts tests start as a throwaway cluster;
  # coturn, the TURN relay of the relay-only tests (run on loopback by them).
  # debootstrap, for the clean Debian 12 the package test installs into;
  # pebble, the ACME test CA; nftables and iproute2, the network-impairment
  # tests' random loss (nft rules in a network namespace of their own).
  for p in chromium firefox-esr webkit2gtk-driver postgresql coturn debootstrap pebble nftables iproute2; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      echo "setup: installing $p"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p" >/dev/null
    fi
  done
  # A minimal Debian 12 with systemd (not running), kept as a tarball: the
  # package test installs the server .deb in a fresh copy of it.
  ROOTFS="${SQUAWK_ROOTFS:-$HOME/.cache/squawk-rootfs/bookworm.tar}"
  if [ ! -f "$ROOTFS" ]; then
    echo "setup: debootstrap of a minimal Debian 12 into $ROOTFS"
    dir=$(mktemp -d)
    $SUDO debootstrap --variant=minbase --include=systemd bookworm "$dir" \
      http://deb.debian.org/debian >/dev/null
    # mktemp made it 0700; a Debian's / is 0755 (the tarball keeps the mode
    # of its `./`, and the unprivileged `squawk` user must traverse it).
    $SUDO chmod 755 "$dir"
    mkdir -p "$(dirname "$ROOTFS")"
    $SUDO tar -C "$dir" -cf "$ROOTFS.part" . && mv "$ROOTFS.part" "$ROOTFS"
    $SUDO rm -rf "$dir"
  fi
  VENV="${SQUAWK_VENV:-$HOME/.cache/squawk-venv}"
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  "$VENV/bin/pip" install -q -r tests/requirements.txt
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# --tests also builds the WebDriver tools; scripts/test.sh instead runs
# --tests-no-tools and builds them with --tools while it builds the project.
if [ "${1:-}" = "--tests" ] || [ "${1:-}" = "--tools" ]; then
  # geckodriver (W3C WebDriver for Firefox) and tauri-driver from crates.io,
  # built outside the clone and outside the project's target directory (so
  # that the two builds do not wait for each other's lock).
  TOOLS="${SQUAWK_TOOLS:-$HOME/.cache/squawk-tools}"
  if [ ! -x "$TOOLS/bin/geckodriver" ]; then
    echo "setup: building geckodriver into $TOOLS"
    env -u CARGO_TARGET_DIR cargo install geckodriver --version 0.37.1 --locked --root "$TOOLS" --quiet
  fi
  if [ ! -x "$TOOLS/bin/tauri-driver" ]; then
    echo "setup: building tauri-driver into $TOOLS"
    env -u CARGO_TARGET_DIR cargo install tauri-driver --version 2.1.0 --locked --root "$TOOLS" --quiet
  fi
fi
