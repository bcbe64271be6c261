# One-command setup: its own .venv, the right MLX build for the platform (pyproject's markers),
# the embedded default model. `make demo`, `make test` (ruff, then pytest), `make run`, `make bench`;
# `make package` / `make check-package` / `make release-mac` for the packaged app (packaging/).

# The first Python >= 3.10 on PATH (macOS's own python3 is 3.9). `make PYTHON=/path/to/python` overrides.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3.10 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE_STAMP := $(VENV)/.installed-package
# -qq: errors only (pip -q still prints warnings, e.g. about its own configuration, and the build backend's).
PIP := $(BIN)/python -m pip install -qq --disable-pip-version-check
ifeq ($(shell uname -s),Darwin)
BUNDLE := dist/Verdict.app
else
BUNDLE := dist/Verdict
endif

.PHONY: setup model demo lint test test-fast test-llama-cpp run bench screenshot package check-package release-mac icons clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "make: Verdict needs Python >= 3.10, found only $$(python3 --version 2>&1 || echo none): install one (brew install python@3.12, python.org, or uv python install 3.12) and run make again"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e ".[test]"
	touch $(STAMP)

model: setup
	$(BIN)/verdict models fetch-default

demo: model
	@echo "== No labels yet: two questions over the eight files of resources/samples. The general answer probe ranks them (P(yes)); without labels nothing is called (see README, Decisions over the batch), so every verdict is 'uncertain'; --suggest names the ones to label first:"
	$(BIN)/verdict classify --format table --suggest 2 \
		--question "Does this ask the reader to pay money?" \
		--question "Is this about food or cooking?" \
		resources/samples
	@echo "== 16+16 labels refit the general probe; 12 descriptions it has not seen, decided with the labeled ones at the default target of 90% (see README, Decisions over the batch):"
	VERDICT_DATA_DIR=$$(mktemp -d) $(BIN)/verdict classify --format table \
		--question "Is this software a game?" \
		--jsonl-in resources/demo/games-new.jsonl --labels resources/demo/games-labeled.jsonl

# ruff with pyproject's [tool.ruff] rules: the tree passes it, so any finding is new.
lint: setup
	$(BIN)/ruff check .

test: lint model
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The tests that need no default model, no real window and no extra process (under a minute).
test-fast: lint model
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

# The real llama-cpp-python server (OpenAI-compatible) on the default GGUF, against the local
# engine: llama-cpp-python goes into its own venv (it compiles llama.cpp: ~10+ minutes once).
LLAMA_CPP_VENV ?= .venv-llama-cpp
LLAMA_CPP_PYTHON_VERSION ?= 0.3.36
$(LLAMA_CPP_VENV)/.installed:
	test -x $(LLAMA_CPP_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_CPP_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(LLAMA_CPP_VENV)/bin/python -m pip install -qq --disable-pip-version-check \
		'llama-cpp-python[server]==$(LLAMA_CPP_PYTHON_VERSION)'
	touch $@

test-llama-cpp: model $(LLAMA_CPP_VENV)/.installed
	VERDICT_LLAMA_CPP_PYTHON=$(abspath $(LLAMA_CPP_VENV))/bin/python \
		$(BIN)/python -m pytest -q -s tests/test_remote_openai.py -k llama_cpp

run: model
	$(BIN)/python -m app

bench: model
	$(BIN)/verdict bench

screenshot: model
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshot.py

# ---- the packaged app (packaging/verdict.spec): dist/Verdict.app on macOS, dist/Verdict/ on Linux

$(PACKAGE_STAMP): $(STAMP)
	$(PIP) -e ".[test,package]"
	touch $(PACKAGE_STAMP)

icons: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/make_icon.py

# The default model goes inside the bundle (resources/models), copied from the user's cache.
package: $(PACKAGE_STAMP) model
	mkdir -p resources/models
	cp -p "$$($(BIN)/verdict models fetch-default)" resources/models/
	$(BIN)/python -m PyInstaller --noconfirm --clean --log-level WARN packaging/verdict.spec
	@echo "built $(BUNDLE)"

# The bundle alone: an empty HOME, a bare PATH and no venv, as on a machine that never had Python;
# and no network where a network namespace can be made (unshare -n: root, as in CI).
check-package: setup
	$(BIN)/python packaging/check_bundle.py $(BUNDLE)
	@set -e; home=$$(mktemp -d); out=$$(mktemp -d); trap 'rm -rf "$$home" "$$out"' EXIT; \
	exe=$(BUNDLE)/Verdict; cli=$(BUNDLE)/verdict; offline=""; \
	if unshare -n true 2>/dev/null; then offline="unshare -n"; echo "(no network: unshare -n)"; fi; \
	if [ -d $(BUNDLE)/Contents ]; then exe=$(BUNDLE)/Contents/MacOS/Verdict; cli=$(BUNDLE)/Contents/MacOS/verdict-cli; fi; \
	printf 'Invoice 4471: EUR 312.50 is due by Friday. Please pay by bank transfer.\n' > "$$out/doc.txt"; \
	echo "== $$exe --self-test"; \
	$$offline env -i HOME="$$home" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen "$$exe" --self-test; \
	echo "== $$cli classify"; \
	$$offline env -i HOME="$$home" PATH=/usr/bin:/bin "$$cli" classify -q "Does this ask the reader to pay money?" \
		--output "$$out/rows.jsonl" "$$out/doc.txt"; \
	$(BIN)/python -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; \
		assert len(rows) == 1 and rows[0]["error"] is None and rows[0]["verdict"] in ("yes", "no", "uncertain"), rows; \
		print("the bundled verdict wrote:", {k: rows[0][k] for k in ("id", "verdict", "probability", "tokens")})' "$$out/rows.jsonl"

# Sign, notarize, staple and wrap dist/Verdict.app in a DMG (packaging/RELEASE.md).
release-mac:
	@bash packaging/release-mac.sh

clean:
	rm -rf $(VENV) $(LLAMA_CPP_VENV) build dist *.egg-info resources/models
