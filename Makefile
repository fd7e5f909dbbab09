# pacsbrowser: the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# Debian packages: what Qt needs at run time, and the real DICOM peers the tests talk to.
GUI_DEBS := libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 \
            libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
            libxcb-render-util0 libxcb-image0 fonts-dejavu-core
TEST_DEBS := orthanc dcmtk xvfb openssl gcc libc6-dev imagemagick

.PHONY: run test lint lint-imports lint-ruff lint-types lint-markers bench deps-gui deps-test venv clean

run: deps-gui $(STAMP)
	$(VENV)/bin/pacsbrowser

test: deps-gui deps-test $(TEST_STAMP) lint
	QT_QPA_PLATFORM=offscreen $(VPY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The rules of the house, checked by tools (configured in pyproject.toml); each fails `make test`.
lint: lint-imports lint-ruff lint-types lint-markers

lint-imports: $(TEST_STAMP)  # layering: core Qt-free, ui/cli off core.dicom, core.dicom off the services
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --no-cache

lint-ruff: $(TEST_STAMP)
	$(VENV)/bin/ruff check --no-cache --output-format concise pacsbrowser tests benchmarks

lint-types: $(TEST_STAMP)  # pacsbrowser/core (the `files` of [tool.mypy])
	PYTHONPATH=$(CURDIR) $(VENV)/bin/mypy --cache-dir=/dev/null

# No `noqa` or `type: ignore` without a reason after it on the same line.
lint-markers:
	@! grep -rnP --include='*.py' '#\s*(noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(\[[^]]*\])?)\s*$$' \
		pacsbrowser tests benchmarks || { echo "lint-markers: give each marker above its reason"; exit 1; }

bench: deps-gui deps-test $(TEST_STAMP)
	QT_QPA_PLATFORM=offscreen $(VPY) -m benchmarks $(BENCH_ARGS)

deps-gui:
	@bash packaging/debian-deps.sh $(GUI_DEBS)

deps-test:
	@bash packaging/debian-deps.sh $(TEST_DEBS)

$(VPY):
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash packaging/debian-deps.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
