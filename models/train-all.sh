#!/bin/sh
# Retrains every shipped model from its config (make models), then evaluates it.
# Each model has a 40-minute time budget on a 2-core machine; set ONLY=<stem> to
# train one. Outputs: models/<stem>.safetensors and the training log models/<stem>.train.jsonl.
set -eu
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
for cfg in models/configs/*.json; do
  stem=$(basename "$cfg" .json)
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$stem" ]; then continue; fi
  echo "== training $stem"
  "$BUILD/sbida" train --config "$cfg" --out "models/$stem.safetensors" 2> "models/$stem.train.jsonl"
  tail -n 1 "models/$stem.train.jsonl"
done
