# SMail developer tasks. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast interop exe smoke wine bench lint catalogs update-catalogs typecheck clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,build,lint]'
	touch $@

catalogs: $(STAMP)
	$(PY) build/catalogs.py compile

update-catalogs: $(STAMP)
	$(PY) build/catalogs.py update

demo: catalogs
	$(PY) examples/demo.py

# The whole suite: lint, the frozen binary built from spec/ and smoke-tested, the Wine stage
# (SMail.exe x64 built, smoke-tested and its Windows-only code tested under Wine with the
# verified python.org interpreter), then every pytest layer (unit, contract, CLI, and the
# Postfix interop suite, which installs and starts its own servers).
test: catalogs
	$(MAKE) --no-print-directory lint exe smoke wine
	$(PY) -m pytest -q

test-fast: catalogs
	$(PY) -m pytest -q -m "not interop and not slow" -x

interop: catalogs
	$(PY) -m pytest -q -m interop

typecheck: $(STAMP)
	$(PY) -m mypy

exe: catalogs
	$(PY) ci/build_exe.py native

smoke:
	$(PY) ci/smoke.py dist/SMail

# Installs Debian's Wine when missing; everything else lives in .wine/ (see ci/wine.py).
wine: catalogs
	$(PY) ci/wine.py

# Windows: SMail.exe with the interpreter of matching bitness (the py launcher finds them).
ifeq ($(OS),Windows_NT)
PY_x86 ?= py -3.14-32
PY_x64 ?= py -3.14-64
exe-x86 exe-x64:
	$(PY_$(@:exe-%=%)) -m pip install --require-hashes -r build/requirements/win-$(@:exe-%=%).txt
	$(PY_$(@:exe-%=%)) build/catalogs.py compile
	$(PY_$(@:exe-%=%)) ci/build_exe.py $(@:exe-%=%)
else
exe-x86 exe-x64: catalogs
	$(PY) ci/build_exe.py $(@:exe-%=%)
endif

bench: catalogs
	$(PY) bench/bench.py
	$(PY) bench/batch_bench.py

lint: $(STAMP)
	$(PY) -m ruff check smail build ci tests examples bench
	$(PY) -m mypy
	$(PY) ci/actionlint.py

clean:
	rm -rf $(VENV) dist .pyinstaller .wine smail/_locales .pytest_cache .mypy_cache .hypothesis
