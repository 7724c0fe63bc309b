#!/bin/sh
# make run: starts sbidad on loopback with the repository's models/ and a
# database under var/. Extra settings: SBIDA_* environment variables (see
# build/sbidad --help).
set -eu
BUILD=${BUILD:-build}
PORT=${PORT:-8080}
mkdir -p var models
exec "$BUILD/sbidad" --listen "127.0.0.1:$PORT" --models models --db var/sbida.db
