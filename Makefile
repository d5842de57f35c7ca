# Two entry points a fresh clone needs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned: its CPU build is what a plain `pip install torch` must not replace by a
# multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: venv demo test lint clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# The offline default suite: tiny models of every family plus the real MiniLM, every mode, cpu.
demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest --hf-set small --hf-offline -p no:cacheprovider -rs --benchmark-columns=median,rounds
	$(BIN)/hfmodels report

test: venv
	$(BIN)/pytest -p no:cacheprovider

lint: venv
	$(BIN)/ruff check pytest_hfmodels tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
