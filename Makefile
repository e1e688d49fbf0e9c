# nst-batch — `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
# Offline weights when the shared folder is there; otherwise torchvision's ImageNet VGG19.
ifneq ($(wildcard $(SHARED)/models/vgg16-hed-features.pth),)
MODEL ?= vgg16
WEIGHTS ?= $(SHARED)/models/vgg16-hed-features.pth
else
MODEL ?= vgg19
WEIGHTS ?= imagenet
endif
DEMO ?= runs/demo
DEMO_GPUS ?= 0
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo seed-analysis example-run clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# mypy: strict over the packages and benchmarks (pyproject); strict over tests/ too, except that
# test functions may leave pytest's fixture arguments unannotated.
lint: $(STAMP)
	$(VENV)/bin/ruff check nst_ops manifests workflows tests benchmarks examples
	$(VENV)/bin/ruff format --check nst_ops manifests workflows tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests --allow-untyped-defs --allow-incomplete-defs --follow-imports=silent

test: lint
	$(VENV)/bin/pytest -q --durations=15

demo: $(STAMP)
	$(VENV)/bin/nst manifest sweep --content examples/content \
		--style examples/style/starry_night.jpg examples/style/wave.jpg \
		--grid style_weight=100,1000,10000 --grid image_size=128 --grid iterations=60 \
		-o $(DEMO)/manifest.parquet
	$(VENV)/bin/nst manifest sweep --content examples/photo/content.jpg --style examples/photo/style.jpg \
		--content-mask examples/photo/content_seg.png --style-mask examples/photo/style_seg.png \
		--grid photo_weight=1e4 --grid image_size=128 --grid iterations=60 \
		-o $(DEMO)/manifest.parquet --append
	$(VENV)/bin/nst run --manifest $(DEMO)/manifest.parquet --output $(DEMO) \
		--model $(MODEL) --weights $(WEIGHTS) --gpus-per-task $(DEMO_GPUS)
	@echo "demo outputs: $(DEMO)/images, $(DEMO)/results.parquet, $(DEMO)/losses.parquet"

# The seed talk's comparisons: α/β over 4 ratios × two style-layer sets, then the report.
SEED ?= runs/seed
seed-analysis: $(STAMP)
	$(VENV)/bin/nst manifest sweep --content examples/content \
		--style examples/style/starry_night.jpg examples/style/wave.jpg \
		--grid style_weight=10,100,1000,10000 \
		--grid style_layers=relu1_1+relu2_1+relu3_1+relu4_1+relu5_1,relu1_1+relu2_1+relu3_1+relu4_2+relu5_2 \
		--grid image_size=128 --grid iterations=60 -o $(SEED)/manifest.parquet
	$(VENV)/bin/nst run --manifest $(SEED)/manifest.parquet --output $(SEED)/run \
		--model $(MODEL) --weights $(WEIGHTS) --gpus-per-task $(DEMO_GPUS) --yardstick-size 128
	$(VENV)/bin/nst report --run $(SEED)/run -o $(SEED)/report
	@echo "open $(SEED)/report/index.html"

# The shipped run the README's analysis examples use (examples/runs/layers): 3 style-layer sets
# x 2 paintings at 128 px with the yardstick every 10 iterations; re-made by this target (then
# update the worked example's output in the README: tests/test_readme.py compares them).
LAYER_SETS := relu1_1+relu2_1+relu3_1+relu4_1+relu5_1,relu1_1+relu2_1+relu3_1+relu4_2+relu5_2,relu1_1+relu2_1+relu3_1
example-run: $(STAMP)
	rm -rf runs/layers
	$(VENV)/bin/nst manifest sweep --content examples/content/tubingen.jpg \
		--style examples/style/wave.jpg examples/style/starry_night.jpg \
		--grid style_layers=$(LAYER_SETS) --grid image_size=128 --grid iterations=100 \
		-o runs/layers/manifest.parquet
	$(VENV)/bin/nst run --manifest runs/layers/manifest.parquet --output runs/layers \
		--model $(MODEL) --weights $(WEIGHTS) --gpus-per-task $(DEMO_GPUS) \
		--yardstick-size 128 --yardstick-every 10
	$(PY) examples/pack_run.py runs/layers examples/runs/layers

clean:
	rm -rf runs
