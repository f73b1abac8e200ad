#!/usr/bin/env bash
# Outputs unchanged across a refactor: a tiny cgan trained and a D' fused through the CLI
# (stable across API changes); prints the shard SHA-256s and a hash of the weights.
# Usage: PYTHONPATH=CHECKOUT bench/fused_sha.sh OUT_DIR  (run once per checkout, compare)
set -euo pipefail
OUT=$(realpath -m "$1")
rm -rf "$OUT"; mkdir -p "$OUT"
tfsynth train --data 'mnist-10k[:512]' --model cgan --steps 40 --batch-size 32 --width 8 \
  --latent-dim 16 --seed 3 --out "$OUT/cgan" --quiet > "$OUT/train.log" 2>&1
tfsynth fuse --real 'mnist-10k[:512]' --aug-policy digits --gen "$OUT/cgan" \
  --counts real=300,aug=200,gen=200 --seed 5 --num-shards 3 --out "$OUT/fused" > "$OUT/fuse.log" 2>&1
cd "$OUT/fused" && sha256sum *.tfrecord* 2>/dev/null || sha256sum $(ls | grep -v json)
python - "$OUT" <<'PY'
import json, sys, hashlib, keras, numpy as np
import tfsynth.models  # registers the trainers
out = sys.argv[1]
m = keras.saving.load_model(f"{out}/cgan/model.keras")
h = hashlib.sha256()
for w in m.weights: h.update(np.asarray(w.numpy()).tobytes())
man = json.load(open(f"{out}/fused/manifest.json"))
print("weights", h.hexdigest()[:16])
print("manifest shards", [s.get("sha256", "")[:16] for s in man["shards"]])
print("class_counts", man["class_counts"])
PY
