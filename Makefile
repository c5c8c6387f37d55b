# Two entry points the README promises: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test bench clean

$(STAMP): pyproject.toml
	-@$(MAKE) --no-print-directory system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# FluidSynth + a General MIDI soundfont make WAV renderings sound like instruments, Chromium + chromedriver run the
# studio's browser tests. Without them (no root, no apt) everything works with the sine synthesizer and the
# browser tests skip naming the packages, so this step never fails the build.
system-deps:
	@if command -v fluidsynth >/dev/null && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth fluid-soundfont-gm chromium chromium-driver \
			>/dev/null) || echo "note: could not install fluidsynth/chromium: sine synthesizer, browser tests skipped"; \
	else echo "note: fluidsynth/chromium not installed (needs root + apt): sine synthesizer, browser tests skipped"; fi

demo: setup
	$(VENV)/bin/musicgen demo --output demo_out

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Side-by-side benchmarks; each prints RESULT lines. PyTorch (the MusicVAE reference) is a bench-only extra.
bench: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	for script in preprocess musicvae_step txl_train_step txl_generate cvae_step serving evaluate magenta_import multi_worker; do \
		$(PY) bench/$$script.py || exit 1; done

clean:
	rm -rf demo_out .pytest_cache
