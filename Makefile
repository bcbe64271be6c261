# One-command setup: its own .venv, the right MLX build for the platform (pyproject's markers),
# the embedded default model. `make demo`, `make test`, `make run`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup model demo test run bench screenshot clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

model: setup
	$(BIN)/verdict models fetch-default

demo: model
	@echo "== Zero-shot, two questions over resources/samples (the 135M model is unsure of most):"
	$(BIN)/verdict classify --format table \
		--question "Does this ask the reader to pay money?" \
		--question "Is this about food or cooking?" \
		resources/samples
	@echo "== With 16+16 labels: a probe on the model's hidden states, on 12 descriptions it has not seen:"
	VERDICT_DATA_DIR=$$(mktemp -d) $(BIN)/verdict classify --format table \
		--question "Is this software a game?" \
		--jsonl-in resources/demo/games-new.jsonl --labels resources/demo/games-labeled.jsonl

test: model
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

run: model
	$(BIN)/python -m app

bench: model
	$(BIN)/verdict bench

screenshot: model
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshot.py

clean:
	rm -rf $(VENV) build dist *.egg-info
