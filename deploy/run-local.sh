#!/bin/sh
# make run: starts sbidad on loopback with the repository's models/ (the shipped
# models plus the always-served baselines) and a database under var/.
#   PORT=8080            port on 127.0.0.1
#   BUILD=build          where sbidad was built (relative to the repository root, or absolute)
#   SBIDA_DB, SBIDA_MODELS  override the database file and the models directory
# Every other setting is an SBIDA_* environment variable (see build/sbidad --help).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PORT=${PORT:-8080}
DB=${SBIDA_DB:-var/sbida.db}
MODELS=${SBIDA_MODELS:-models}
if [ ! -x "$BUILD/sbidad" ]; then
  echo "run-local: $BUILD/sbidad is missing; run make first" >&2
  exit 1
fi
mkdir -p "$(dirname "$DB")" "$MODELS"
echo "sbidad: http://127.0.0.1:$PORT  (database $DB, models $MODELS; Ctrl-C stops it)"
echo "try:"
echo "curl -s http://127.0.0.1:$PORT/v1/estimators/l96-sakov-etkf"
exec "$BUILD/sbidad" --listen "127.0.0.1:$PORT" --models "$MODELS" --db "$DB"
