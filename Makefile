# The two commands a new user needs:
#   make demo   -- synthetic MEG-MASC + tiny model, end to end, prints the results table
#   make test   -- the whole test suite
# Both create or update the project's own virtual environment (.venv) first; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

.PHONY: venv demo test test-fast lint bench bench-quick report clean

venv: $(STAMP)

# Re-installs only when the dependency list changes (or this Makefile). torch is installed first on its own,
# pinned, so that no other package can pull a CUDA build of it. B10's CTC peers come last: pyctcdecode 0.5.0
# declares numpy<2 (stale: it runs on numpy 2), so it is installed without its dependencies, which would
# downgrade numpy for everything else.
$(STAMP): pyproject.toml requirements.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps pyctcdecode==0.5.0 pygtrie==2.6.2 \
	  flashlight-text==0.0.7
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/brain2text demo $(ARGS)

# The lint gate first (ruff, configured in pyproject.toml), then the suite.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick $(ARGS)

# Builds report/main.pdf from the demo's metrics (run `make demo` first). LaTeX comes from Debian's
# packages, installed here when missing (needs root, as on the project's machines).
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended texlive-bibtex-extra
report: $(STAMP)
	@command -v pdflatex >/dev/null && command -v bibtex >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES))
	$(VENV)/bin/brain2text report $(ARGS)

clean:
	rm -rf outputs .cache .pytest_cache
