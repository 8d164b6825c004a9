# r1d: the two commands of the README.
#   make run    install what is missing, build, start `r1d serve` on the
#               default model (http://127.0.0.1:8000; PORT=, HOST= override)
#   make test   install what is missing, build, run every test (also under
#               ASan+UBSan)
# Both are idempotent. Other targets: build, install, recipe, bench, bench-train,
# bench-grpo, bench-server, bench-storage, fixtures, format, clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
VENV       := $(BUILD)/venv
REF_VENV   := $(BUILD)/venv-ref
MODEL      ?= models/r1d-tiny
RUNS       ?= $(BUILD)/runs
PROMPT     ?= What is 12 + 30?
HOST       ?= 127.0.0.1
PORT       ?= 8000
DATA_DIR   ?= $(BUILD)/data
MESON_OPTS ?=
# The CUDA backend is compiled (and linked) whenever nvcc is there, as in CI;
# without it the build goes on with the CPU backend alone. The ASan build
# stays CPU-only: ASan and the CUDA runtime's address space do not mix well.
export PATH := $(PATH):/usr/local/cuda/bin
CUDA       ?= $(if $(shell command -v nvcc),enabled,disabled)

.PHONY: all deps build install run recipe ship-model generate test test-unit test-asan test-cli test-e2e bench bench-train bench-grpo bench-server bench-storage gpu-check fixtures format clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dcuda=$(CUDA) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(VENV)/.stamp: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	touch $@

# The default model is models/r1d-tiny, trained by `make recipe` (its
# README.md is the model card); another MODEL= must be a model folder.
run: build
	$(BUILD)/r1d serve --model $(MODEL) --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# One completion on the command line, no server.
generate: build
	$(BUILD)/r1d generate --model $(MODEL) --prompt "$(PROMPT)" --max-tokens 64 --stats

# The R1 recipe that trained models/r1d-tiny, every stage an r1d command
# (models/r1d-tiny/recipe.json; resumable: run it again after a stop), then
# its final model copied into models/r1d-tiny with the results beside it.
recipe: build
	$(BUILD)/r1d pipeline models/r1d-tiny/recipe.json --out $(RUNS)/r1d-tiny

ship-model:
	cp $(RUNS)/r1d-tiny/align/last/config.json $(RUNS)/r1d-tiny/align/last/generation_config.json \
	   $(RUNS)/r1d-tiny/align/last/model.safetensors $(RUNS)/r1d-tiny/align/last/tokenizer.json \
	   $(RUNS)/r1d-tiny/align/last/tokenizer_config.json models/r1d-tiny/
	mkdir -p models/r1d-tiny/results
	cp $(RUNS)/r1d-tiny/results.jsonl $(RUNS)/r1d-tiny/results.svg $(RUNS)/r1d-tiny/pipeline.json \
	   models/r1d-tiny/results/
	cp -r $(RUNS)/r1d-tiny/plots/* models/r1d-tiny/results/
	mkdir -p models/r1d-tiny/results/r1-zero
	cp $(RUNS)/r1d-tiny/r1-zero/plots/*.svg models/r1d-tiny/results/r1-zero/

# The binary, the systemd unit and the example config (PREFIX via meson:
# meson configure $(BUILD) -Dprefix=/usr).
install: build
	meson install -C $(BUILD)

test: test-unit test-asan test-cli test-e2e

test-unit: build
	meson test -C $(BUILD) --print-errorlogs

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dbuildtype=debug -Doptimization=1 \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled \
	  $(MESON_OPTS)

# Unit tests and the CLI's bad-input tests again, under ASan+UBSan.
test-asan: deps $(ASAN_BUILD)/build.ninja $(VENV)/.stamp
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --timeout-multiplier 4
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	R1D_BIN=$(abspath $(ASAN_BUILD))/r1d R1D_SHARED=$(abspath ..)/shared R1D_ASAN=1 \
	  $(VENV)/bin/pytest -q tests/cli

test-cli: build $(VENV)/.stamp
	R1D_BIN=$(abspath $(BUILD))/r1d R1D_SHARED=$(abspath ..)/shared \
	  $(VENV)/bin/pytest -q tests/cli

# End to end: a real `r1d serve` driven by the official openai package.
test-e2e: build $(VENV)/.stamp
	R1D_BIN=$(abspath $(BUILD))/r1d R1D_SHARED=$(abspath ..)/shared \
	  $(VENV)/bin/pytest -q tests/e2e

# Benchmarks (not tests): they print ratios against a peer run in the same go.
bench: build $(REF_VENV)/.stamp
	$(BUILD)/bench/bench_tokenizer
	$(BUILD)/bench/bench_tokenizer --write-texts $(BUILD)/bench-texts
	$(REF_VENV)/bin/python bench/bench_tokenizer_py.py $(BUILD)/bench-texts
	$(REF_VENV)/bin/python bench/bench_model.py --r1d $(BUILD)/r1d --repeat 3
	$(BUILD)/bench/bench_engine --shape small --threads 2 --prompt 256 --gen 64 --conc 1,8,32

# Training: r1d pretrain against PyTorch eager (transformers), same model,
# batch and threads, in one run.
bench-train: build $(REF_VENV)/.stamp
	$(REF_VENV)/bin/python bench/bench_train.py --r1d $(BUILD)/r1d

# GRPO: seconds per step and their split, rollout tok/s against the engine's
# own, hot-swap latency (bench/bench_grpo.py; no torch needed).
bench-grpo: build
	python3 bench/bench_grpo.py --r1d $(BUILD)/r1d

# The HTTP server against the engine alone, same requests, same run.
bench-server: build $(VENV)/.stamp
	$(VENV)/bin/python bench/bench_server.py --r1d $(BUILD)/r1d --model $(MODEL)

# What storage costs: output tok/s at 64 streams with logging on vs off (same
# run), bytes per interaction, and the task import rate.
bench-storage: build $(VENV)/.stamp
	$(VENV)/bin/python bench/bench_server.py --r1d $(BUILD)/r1d --logging-compare --duration 20 --rounds 2
	$(VENV)/bin/python bench/bench_tasks_import.py --r1d $(BUILD)/r1d --n 100000

# The GPU check (tests/gpu/run.sh): op tests on the GPU, engine benchmark.
gpu-check: build
	./tests/gpu/run.sh

# Reference fixtures: torch + transformers + tokenizers (CPU), only here.
$(REF_VENV)/.stamp: tests/ref/requirements.txt
	python3 -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q -r tests/ref/requirements.txt
	touch $@

fixtures: build $(REF_VENV)/.stamp
	$(REF_VENV)/bin/python tests/ref/make_tokenizer_fixtures.py
	$(REF_VENV)/bin/python tests/ref/make_template_fixtures.py
	$(REF_VENV)/bin/python tests/ref/make_model_fixtures.py
	$(REF_VENV)/bin/python tests/ref/make_train_ref.py
	$(REF_VENV)/bin/python tests/ref/make_grpo_ref.py
	$(REF_VENV)/bin/python tests/ref/make_optim_ref.py
	$(REF_VENV)/bin/python tests/ref/make_safetensors_fixture.py
	$(REF_VENV)/bin/python tests/ref/check_model_init.py --r1d $(BUILD)/r1d

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
