#!/bin/sh
# Installs the Debian 12 packages sbida needs to build, test and run.
#   install-deps.sh              install everything listed (root), else print the apt-get line
#   install-deps.sh --if-missing do nothing when all are present
#   install-deps.sh --bench      also what `make bench` compares against (PyTorch, numpy, wrk)
#   install-deps.sh --fuzz       also clang, for make fuzz (libFuzzer); make test does not need it
# Set SBIDA_NO_INSTALL=1 to never install (then a missing package is an error).
set -eu
# Everything a test uses is listed: `make test` turns a skipped test into a failure
# (SBIDA_NO_SKIP=1). systemd: systemd-analyze (test_deploy); python3-pip,
# python3-setuptools, python3-wheel: the offline pip install of the client;
# valgrind: the daemon memcheck run (test_slow_checks); shellcheck: the shell scripts;
# chromium, chromium-driver, python3-selenium: the web console in a real browser (test_web_console);
# libpq-dev: the PostgreSQL store; postgresql: the server the tests start (tests/py/pg_util.py).
# docker-compose: `docker-compose config` validates the compose files (no Docker engine needed);
# nginx-light: test_deploy runs deploy/nginx-replicas.conf in front of local replicas (on a
# machine with systemd, Debian also enables an nginx service on port 80: `systemctl disable --now nginx`).
# openmpi-bin, libopenmpi-dev: training across processes, `mpirun -np P sbida train`
# (docs/training-mpi.md; tests/py/test_train_mpi.py); without them sbida builds one-process training.
PKGS="build-essential pkg-config libjansson-dev libopenblas-dev libsqlite3-dev libuv1-dev \
libmicrohttpd-dev libcmocka-dev libfftw3-dev libpng-dev libpq-dev openmpi-bin libopenmpi-dev \
postgresql python3 python3-numpy python3-pytest python3-jsonschema \
python3-yaml python3-pip python3-setuptools python3-wheel curl shellcheck systemd valgrind \
chromium chromium-driver python3-selenium docker-compose nginx-light"

if_missing=0
for a in "$@"; do
  case "$a" in
    --if-missing) if_missing=1 ;;
    --bench) PKGS="$PKGS python3-torch wrk" ;;
    --fuzz) PKGS="$PKGS clang" ;;  # Debian's clang 14 brings libFuzzer and the sanitizers
    *) echo "install-deps: unknown option $a" >&2; exit 2 ;;
  esac
done

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ "$if_missing" = 1 ] && [ -z "$missing" ]; then
  exit 0
fi
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ] || [ "${SBIDA_NO_INSTALL:-0}" = "1" ]; then
  echo "install-deps: missing Debian packages:$missing" >&2
  echo "install-deps: run as root:  apt-get update && $line" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
