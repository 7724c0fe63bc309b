#!/bin/sh
cd /work/main
run() {
  /work/s22/sbida eval --estimator models/l96-sakov-n32-k3-local-score-focus.safetensors --preset l96-sakov --N 40 --window 10 --operator '{"type":"identity"}' --noise-std 1 --cases 8 --samples 64 --seed 2026 --threads 1 --params "$1" --json /tmp/fs.json --quiet >/dev/null 2>&1
  /usr/bin/python3 -c "
import json,sys; d=json.load(open('/tmp/fs.json')); s=d.get('summary',d)
def g(k):
  for src in (s,d):
    if k in src: return src[k]
print(sys.argv[1], 'rmse %.4f spread %.4f crps %.4f cov %s sec %.2f'%(g('rmse'),g('spread'),g('crps'),d['coverage']['max_abs_error'],g('seconds_per_request')))" "$1"
}
for P in "$@"; do run "$P"; done
