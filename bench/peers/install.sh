#!/usr/bin/env bash
# Install the peer chat servers `make compare` measures against ours:
#   ngircd    Debian package (needs apt-get; root, or sudo without a password)
#   miniircd  PyPI package, into the project's virtualenv
# Usage: bench/peers/install.sh [VENV]   (default .venv)
# Idempotent: what is installed already is left alone.
set -euo pipefail
VENV="${1:-.venv}"

have_ngircd() {
    command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ]
}

if have_ngircd; then
    echo "ngircd: already installed"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            echo "ngircd: not installed, and installing it needs root (apt-get install ngircd)" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ngircd: not installed, and there is no apt-get here; install the ngircd package by hand" >&2
        exit 1
    fi
    echo "ngircd: installing the Debian package"
    $SUDO apt-get update -qq
    # The package's service must not start (it would take port 6667); policy-rc.d
    # usually forbids it in containers, and the harness starts its own instances.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ngircd >/dev/null
    have_ngircd || { echo "ngircd: installation failed" >&2; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "miniircd: no virtualenv at $VENV (run make install first)" >&2
    exit 1
fi
if "$VENV/bin/python" -c "import miniircd" 2>/dev/null; then
    echo "miniircd: already installed in $VENV"
else
    echo "miniircd: installing from PyPI into $VENV"
    "$VENV/bin/pip" install --quiet miniircd
fi
echo "peers ready: $(ngircd --version 2>/dev/null | head -1 || /usr/sbin/ngircd --version | head -1); miniircd $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("miniircd"))')"
