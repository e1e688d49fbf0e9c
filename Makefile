# nst-batch — `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
MODEL ?= vgg16
WEIGHTS ?= $(SHARED)/models/vgg16-hed-features.pth
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check nst_ops manifests workflows tests benchmarks
	$(VENV)/bin/ruff format --check nst_ops manifests workflows tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q

demo: $(STAMP)
	$(VENV)/bin/nst stylize examples/content/tubingen.jpg examples/style/starry_night.jpg \
		-o runs/demo/tubingen_starry_night.png --model $(MODEL) --weights $(WEIGHTS) \
		--image-size 256 --iterations 150

clean:
	rm -rf runs
