#!/usr/bin/env bash
# Install the Debian packages civicvoucher's browser/PDF tests need:
#   chromium        - headless browser driven by Playwright (executable_path=/usr/bin/chromium)
#   fonts-noto-cjk  - CJK glyphs so Chinese labels render in screenshots and PDFs
#   poppler-utils   - pdftoppm / pdftotext for checking generated PDFs
#   poppler-data    - CJK encoding data for poppler
#
# Idempotent and quiet: does nothing when everything is already installed,
# runs `apt-get update` at most once, and prints output only on failure.
# Skips (exit 0, with a message) when not root or when apt-get is unavailable.
set -euo pipefail

PACKAGES=(chromium fonts-noto-cjk poppler-utils poppler-data)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
else
    missing=("${PACKAGES[@]}")
fi

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; skipping (missing: ${missing[*]})" >&2
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: not root; skipping (missing: ${missing[*]})" >&2
    exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

run_quiet() {
    if ! "$@" >"$log" 2>&1; then
        echo "install-system-deps: command failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

export DEBIAN_FRONTEND=noninteractive
run_quiet apt-get update
run_quiet apt-get install -y --no-install-recommends "${PACKAGES[@]}"
