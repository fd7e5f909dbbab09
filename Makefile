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
TEST_DEBS := orthanc orthanc-dicomweb dcmtk xvfb openssl gcc libc6-dev imagemagick desktop-file-utils appstream librsvg2-bin

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

# -- packaging (packaging/README.md) ------------------------------------------------------------
# `make wheel`: dist/*.whl and dist/*.tar.gz (sdist). `make package`: the PyInstaller one-folder
# bundle built from that wheel in build/venv, and dist/pacsbrowser-VERSION-linux-ARCH.tar.gz with
# packaging/install.sh in it. Both write only build/ and dist/ (git-ignored).
PKG_VENV := build/venv
PKG_DEBS := binutils  # PyInstaller reads libraries with objdump; strip
PKG_VPY := $(PKG_VENV)/bin/python
PKG_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' pacsbrowser/__init__.py)
PKG_NAME = pacsbrowser-$(PKG_VERSION)-linux-$(shell uname -m)

.PHONY: wheel package
# Build from the installed wheel only: a PYTHONPATH pointing at a source tree would hide it.
wheel package: export PYTHONPATH =

$(PKG_VPY):
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash packaging/debian-deps.sh python3-venv
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VPY) -m pip install -q --upgrade pip build 'pyinstaller>=6.10'

wheel: $(PKG_VPY)
	rm -f dist/pacsbrowser-*.whl $(filter-out %-linux-$(shell uname -m).tar.gz,$(wildcard dist/pacsbrowser-*.tar.gz))
	$(PKG_VPY) -m build --outdir dist .

package: deps-gui wheel
	@bash packaging/debian-deps.sh $(PKG_DEBS)
	$(PKG_VPY) -m pip install -q --force-reinstall --no-deps dist/pacsbrowser-$(PKG_VERSION)-*.whl
	$(PKG_VPY) -m pip install -q dist/pacsbrowser-$(PKG_VERSION)-*.whl
	rm -rf dist/bundle build/pyinstaller
	$(PKG_VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist/bundle \
	    --workpath build/pyinstaller packaging/pacsbrowser.spec
	@# debug symbols of the interpreter itself (a self-built Python keeps ~30 MB of them)
	-command -v strip >/dev/null && strip --strip-debug dist/bundle/pacsbrowser/_internal/libpython3*.so* \
	    dist/bundle/pacsbrowser/_internal/python3*/lib-dynload/*.so
	rm -rf build/$(PKG_NAME) && mkdir -p build/$(PKG_NAME)
	cp -a dist/bundle/pacsbrowser/. build/$(PKG_NAME)/
	install -m 755 packaging/install.sh build/$(PKG_NAME)/install.sh
	tar -C build -czf dist/$(PKG_NAME).tar.gz $(PKG_NAME)
	@du -sh dist/bundle/pacsbrowser dist/$(PKG_NAME).tar.gz
