# make demo   sets everything up, packs the digits example, serves it on 127.0.0.1:3000, calls it, stops
# make test   sets everything up (venv, Docker + SAM emulation) and runs every test tier
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EMULATION ?= ../shared/lambda-emulation
# Lambda base-image stand-ins the Docker tier uses (../shared/lambda-emulation/README.md): python3.13, the
# default runtime, on x86_64 and on arm64 under QEMU, and 3.11 for bundles packed with --python 3.11.
LAMBDA_EMULATION_IMAGES ?= 3.11 3.13 3.13-arm64
# setup.sh leaves a python3.13 there: zip bundles for python3.13 get their .pyc files compiled with it.
export PATH := $(PATH):$(or $(LAMBDA_EMULATION_CACHE),/var/cache/lambda-emulation)/bin
DIGITS := examples/digits

JARGON := examples/jargon

.PHONY: venv system emulation digits jargon demo test quick lint unit functional hostile integration bench clean
APT_PACKAGES := chromium fonts-dejavu-core zip wrk jargon-text

$(VENV)/.installed: pyproject.toml handlers/requirements.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
	$(BIN)/pip install -q torch==2.13.0 2>&1 | grep -v 'is ignored' || true
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python -c 'import torch, onnxruntime, packager, handlers, samcli, moto'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests use: Chromium renders /docs, DejaVu draws the OCR text lines, wrk loads serve,
# jargon-text is the Jargon File (public domain) the text-generation example and tests train on.
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing"; apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

emulation: venv
	PYTHON=$(BIN)/python LAMBDA_EMULATION_IMAGES="$(LAMBDA_EMULATION_IMAGES)" bash $(EMULATION)/setup.sh

$(DIGITS)/eval.npz $(DIGITS)/train.npz $(DIGITS)/weights.pt &: $(DIGITS)/model.py | venv
	$(BIN)/python $(DIGITS)/model.py

digits: $(DIGITS)/eval.npz

# A 1 M-parameter Llama trained on the Jargon File (800 steps on one core, minutes), and its held-out text.
$(JARGON)/checkpoint/config.json $(JARGON)/heldout.txt &: $(JARGON)/model.py | venv system
	$(BIN)/python $(JARGON)/model.py

jargon: $(JARGON)/checkpoint/config.json

demo: venv digits
	bash $(DIGITS)/demo.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit

functional: venv system digits
	$(BIN)/pytest -q tests/functional

hostile: venv system digits
	$(BIN)/pytest -q tests/hostile

integration: venv digits emulation
	$(BIN)/pytest -q tests/integration

test: venv system digits emulation lint
	$(BIN)/pytest -q tests/unit tests/functional tests/hostile tests/integration

# The edit-test loop: unit and functional tests without the minutes-long fits and soaks, no Docker.
quick: venv system digits
	$(BIN)/pytest -q -m "not slow" tests/unit tests/functional

bench: venv system digits jargon emulation
	$(BIN)/python bench/compression.py
	$(BIN)/python bench/handler.py
	$(BIN)/python bench/emulators.py
	$(BIN)/python bench/generate.py

clean:
	rm -rf build .aws-sam .pytest_cache .mypy_cache .ruff_cache
