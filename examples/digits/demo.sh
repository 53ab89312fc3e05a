#!/usr/bin/env bash
# The README's `make demo`: pack the digits CNN, serve it with `lambdafit serve`, call it, stop.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
PORT=${PORT:-3000}

$BIN/lambdafit pack examples/digits/model.py:build --name digits \
  --eval examples/digits/eval.npz --calibration examples/digits/train.npz --force

$BIN/lambdafit serve build/digits --port "$PORT" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

body=$($BIN/python -c 'import json, numpy as np; d = np.load("examples/digits/eval.npz"); print(json.dumps({"inputs": d["x"][:3].tolist()}))')
expected=$($BIN/python -c 'import numpy as np; print(" ".join(map(str, np.load("examples/digits/eval.npz")["labels"][:3])))')
echo
echo "POST 127.0.0.1:$PORT/predict with the first 3 held-out digits (true labels: $expected)"
curl -s -XPOST "127.0.0.1:$PORT/predict" -H 'content-type: application/json' -d "$body" \
  | $BIN/python -c 'import json, sys; r = json.load(sys.stdin); print("predicted:", " ".join(p["label"] for p in r["predictions"]), "| scores:", [p["score"] for p in r["predictions"]], "| model", r["model"], r["version"])'
echo "GET /health: $(curl -s 127.0.0.1:$PORT/health)"
echo "a bad request: $(curl -s -XPOST 127.0.0.1:$PORT/predict -H 'content-type: application/json' -d '{"inputs": [[1, 2, 3]]}')"
echo
echo "next: cd build/digits && sam build && sam local invoke -e events/predict-rest.json   (see README)"
