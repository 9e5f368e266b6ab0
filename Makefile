# Two commands: `make book` (PROFILE=quick by default; smoke and paper too) and `make test`.
# `make book BUNDLE=FILE` first imports a bundle of trained runs (`python -m mia_utils store export
# FILE` writes one), so that the book renders without training.
PROFILE ?= quick
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: book pdf tex test setup data browser executed clean clean-all

# Training first, on one single-thread worker per core (about 10 % faster than one process with
# every thread: benchmarks/results/sweep.md); the chapters then read their runs from the store,
# as many at once as there are workers (the findings page last).
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# The book's GitHub repository (https://github.com/OWNER/NAME): with it, the pages get repository,
# issue, edit and launch (Binder, Colab) buttons; without it, none of them (no invented URL).
REPOSITORY ?=

# `python -m mia_utils book` runs those steps (sweep, run, build) with a short console: one progress bar,
# one line per chapter, a summary; the cells' output goes to _build/logs/.
book: setup data
	$(PY) -m mia_utils book --profile $(PROFILE) --workers $(WORKERS) $(if $(BUNDLE),--bundle $(BUNDLE),) \
		$(if $(REPOSITORY),--repository $(REPOSITORY),)

# The book as a PDF (_build/latex/book.pdf) through Jupyter Book's LaTeX route, from the pages
# `make book` executed; Debian's TeX packages are installed first when apt is usable as root.
pdf: setup tex
	$(PY) -m mia_utils build --pdf

tex:
	@if ! command -v xelatex >/dev/null || ! command -v xindy >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
				texlive-fonts-extra texlive-plain-generic fonts-freefont-otf latexmk xindy; \
		else echo "install TeX Live with xelatex, latexmk and xindy to build the PDF"; exit 1; fi; \
	fi

test: setup data browser
	$(PY) -m pytest

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Fashion-MNIST: Debian's package when apt is usable, otherwise torchvision's download.
data: $(STAMP)
	@if [ ! -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "apt-get could not install dataset-fashion-mnist; falling back to torchvision's download"; \
	fi
	$(PY) -c "from mia_utils.data import load_dataset; d = load_dataset('fmnist'); print('Fashion-MNIST from', d.source)"

# Headless Chromium for the page tests (Debian's package; the tests skip it when absent).
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "apt-get could not install chromium; the browser tests will be skipped"; \
	fi

clean:
	$(PY) -m mia_utils clean

clean-all:
	$(PY) -m mia_utils clean --store
	rm -rf $(VENV)
