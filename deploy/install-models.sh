#!/bin/sh
# Installs the shipped models with their evaluations into DEST, the directory
# sbidad's --models points to: DEST/*.safetensors and DEST/eval/<model>/...
# (the evaluations GET /v1/estimators shows next to each model; without them a
# deployed daemon answers "evaluation": null). Used by the Dockerfile and the
# systemd install lines.
#   deploy/install-models.sh DEST [SRC]    SRC defaults to models/
set -eu
dest=${1:?usage: install-models.sh DEST [SRC]}
src=${2:-models}
[ -d "$src" ] || { echo "install-models: no directory $src" >&2; exit 1; }
mkdir -p "$dest"
n=0
for f in "$src"/*.safetensors; do
  [ -e "$f" ] || continue
  cp "$f" "$dest/"
  n=$((n + 1))
done
if [ -d "$src/eval" ]; then
  rm -rf "$dest/eval"
  cp -R "$src/eval" "$dest/eval"
fi
echo "install-models: $n model(s) and $(find "$dest/eval" -name '*.json' 2>/dev/null | wc -l) evaluation file(s) in $dest"
