#!/usr/bin/env bash
# Regenerates the API Gateway event fixtures with the real AWS SAM CLI (`sam local generate-event`).
#   bash tests/events/generate.sh        (needs .venv with aws-sam-cli)
set -euo pipefail
cd "$(dirname "$0")"
SAM=${SAM:-../../.venv/bin/sam}
export SAM_CLI_TELEMETRY=0
sample=$(../../.venv/bin/python -c 'import json; print(json.dumps({"inputs": [[0.0, 0.0, 0.3125, 0.8125, 0.5625, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.8125, 0.9375, 0.625, 0.9375, 0.3125, 0.0, 0.0, 0.1875, 0.9375, 0.125, 0.0, 0.6875, 0.5, 0.0, 0.0, 0.25, 0.75, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.3125, 0.5, 0.0, 0.0, 0.5625, 0.5, 0.0, 0.0, 0.25, 0.6875, 0.0, 0.0625, 0.75, 0.4375, 0.0, 0.0, 0.125, 0.875, 0.3125, 0.625, 0.75, 0.0, 0.0, 0.0, 0.0, 0.375, 0.8125, 0.625, 0.0, 0.0, 0.0]]}))')
rest() { "$SAM" local generate-event apigateway aws-proxy --method "$1" --path "$2" --body "$3" > "$4"; }
rest POST predict "$sample" predict-rest.json
rest GET health "" health-rest.json
rest GET nope "" unknown-route-rest.json
rest GET predict "" wrong-method-rest.json
rest POST predict '{"inputs": [[1, 2' malformed-json-rest.json
rest POST predict '{"inputs": [[1, 2, 3]]}' wrong-shape-rest.json
rest POST predict '{"inputs": [["a"]]}' wrong-dtype-rest.json
rest POST predict "" empty-body-rest.json
