#!/bin/sh
# Retrains every shipped model from its config (make models); models/evaluate.sh
# <stem> then evaluates one. Each model has the time budget of its config (at most
# 40 minutes on a 2-core machine; the 2D kolmogorov-w5-composed-score 55 minutes and
# l96-sakov-w10-composed-score-w32 70 minutes on ONE thread);
# set ONLY=<stem> to train one. Outputs:
# models/<stem>.safetensors, the training log models/<stem>.train.jsonl and the
# summary models/<stem>.train.out. The local-score config trains on ONE thread ("threads": 1)
# and is resumed by models/configs/resume/ (EMA decay 0.9 for the last 52 steps), then
# continued by models/configs/continue/ (a warm start from those weights: fresh AdamW, its own
# warm-up and schedule, 2 threads; models/warmstart-state.py writes the starting state), then
# by models/configs/continue2/ (the same from the third stage's weights, 75 minutes, 1 thread);
# l96-sakov-n32-k3-local-score-focus repeats that chain and adds models/configs/continue3/
# (30,000 more steps with train.tau_focus, 1 thread, about 45 minutes).
set -eu
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
for cfg in models/configs/*.json; do
  stem=$(basename "$cfg" .json)
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$stem" ]; then continue; fi
  echo "== training $stem"
  "$BUILD/sbida" train --config "$cfg" --out "models/$stem.safetensors" \
    > "models/$stem.train.out" 2> "models/$stem.train.jsonl"
  # a resume config (models/configs/resume/<stem>.json) continues the run from its state
  if [ -f "models/configs/resume/$stem.json" ]; then
    "$BUILD/sbida" train --config "models/configs/resume/$stem.json" --resume "models/$stem.safetensors.state" \
      --out "models/$stem.safetensors" >> "models/$stem.train.out" 2>> "models/$stem.train.jsonl"
  fi
  # continue configs (models/configs/continue/<stem>.json, then continue2/, continue3/) each
  # warm-start a new run from the weights the stage before left
  for stage in continue continue2 continue3; do
    [ -f "models/configs/$stage/$stem.json" ] || continue
    python3 models/warmstart-state.py "models/$stem.safetensors" "models/$stem.warm.state"
    "$BUILD/sbida" train --config "models/configs/$stage/$stem.json" --resume "models/$stem.warm.state" \
      --out "models/$stem.safetensors" >> "models/$stem.train.out" 2>> "models/$stem.train.jsonl"
  done
  cat "models/$stem.train.out"
done
# models written from another one: the -cycle composed prior as a local score of run length 10
# (the same weights; any N, any W >= 10; docs/local-score.md)
if [ -z "${ONLY:-}" ] || [ "$ONLY" = l96-sakov-w10-local-score-cycle ]; then
  echo "== writing l96-sakov-w10-local-score-cycle"
  "$BUILD/sbida" model models/l96-sakov-w10-composed-score-cycle.safetensors \
    --as-local-score models/l96-sakov-w10-local-score-cycle.safetensors
fi
