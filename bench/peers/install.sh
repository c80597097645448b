#!/usr/bin/env bash
# Install the peer servers `make compare` measures against ours:
#   ngircd        Debian package ngircd        (IRC)
#   mosquitto     Debian package mosquitto     (MQTT)
#   redis-server  Debian package redis-server  (Redis pub/sub)
#   nats-server   Debian package nats-server   (NATS)
#   miniircd      PyPI package, into the project's virtualenv (IRC)
# The Debian packages need apt-get (root, or sudo without a password).
# Usage: bench/peers/install.sh [VENV]   (default .venv)
# Idempotent: what is installed already is left alone.  Every peer is tried;
# the last line names the ones that could not be installed (exit status 1).
set -uo pipefail
VENV="${1:-.venv}"
MISSING=()

have() {  # binary on PATH or in an sbin directory
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

SUDO=""
CAN_APT=1
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        CAN_APT=0
        APT_WHY="installing it needs root"
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    CAN_APT=0
    APT_WHY="there is no apt-get here"
fi
UPDATED=0

# apt_peer BINARY PACKAGE
apt_peer() {
    local binary="$1" package="$2"
    if have "$binary"; then
        echo "$binary: already installed"
        return
    fi
    if [ "$CAN_APT" -ne 1 ]; then
        echo "$binary: not installed, and $APT_WHY (apt-get install $package)" >&2
        MISSING+=("$package")
        return
    fi
    if [ "$UPDATED" -eq 0 ]; then
        $SUDO apt-get update -qq || true
        UPDATED=1
    fi
    echo "$binary: installing the Debian package $package"
    # A package's service must not matter: the harness starts its own instances on
    # free ports (policy-rc.d usually keeps services from starting in containers).
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    if ! have "$binary"; then
        echo "$binary: installation of $package failed" >&2
        MISSING+=("$package")
    fi
}

apt_peer ngircd ngircd
apt_peer mosquitto mosquitto
apt_peer redis-server redis-server
apt_peer nats-server nats-server

if [ ! -x "$VENV/bin/python" ]; then
    echo "miniircd: no virtualenv at $VENV (run make install first)" >&2
    MISSING+=("miniircd (PyPI)")
elif "$VENV/bin/python" -c "import miniircd" 2>/dev/null; then
    echo "miniircd: already installed in $VENV"
else
    echo "miniircd: installing from PyPI into $VENV"
    "$VENV/bin/pip" install --quiet miniircd || MISSING+=("miniircd (PyPI)")
fi

if [ "${#MISSING[@]}" -gt 0 ]; then
    echo "peers NOT installed: ${MISSING[*]} (their targets and tests are unavailable)" >&2
    exit 1
fi
echo "peers ready: ngircd, mosquitto, redis-server, nats-server, miniircd"
