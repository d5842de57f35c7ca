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
# pytest-benchmark still times every round (--benchmark-quiet hides only its table of every case);
# the demo ends with the report's one screen (summary, what changed, per model its matrix row and
# fastest runtime), also when a case failed, and exits with pytest's status.
demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest --hf-set small --hf-offline -p no:cacheprovider -rs --benchmark-quiet; \
	status=$$?; $(BIN)/hfmodels report; exit $$status

test: venv
	$(BIN)/pytest -p no:cacheprovider

lint: venv
	$(BIN)/ruff check pytest_hfmodels tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
