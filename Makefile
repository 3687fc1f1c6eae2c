# Two commands do all the set-up on a fresh machine (both idempotent):
#   make demo   install what is missing, then run the main job on RecBole's bundled ml-100k
#   make test   install what is missing, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export RECBOLE_LLM_RAW_DATA ?= $(abspath ../shared/datasets)

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	@if $(PY) -c "import json,sys; e=[json.loads(l) for l in open('benchmarks/results/p4r.jsonl')]; \
		sys.exit(not {'LightGCN','P4R'} <= {x['model'] for x in e if x.get('kind')=='trials' and x.get('dataset')=='ml-100k'})" 2>/dev/null; then \
		$(PY) run_recbole_llm.py --benchmark=benchmarks/suites/p4r.yaml --datasets=ml-100k --models=LightGCN,P4R \
			--seeds=1 --jobs=2 --tuned_from=benchmarks/results/p4r.jsonl --output=demo_results && \
		echo "Full tables (5 seeds, every baseline tuned): benchmarks/results/p4r.md; all suites: benchmarks/README.md"; \
	else \
		echo "The p4r suite has no stored ml-100k tunings of LightGCN and P4R yet (benchmarks/results/p4r.jsonl): LightGCN and P4R with their yaml defaults, to early stopping."; \
		$(PY) run_recbole_llm.py --compare=LightGCN,P4R --dataset=ml-100k --seeds=1 --epochs=300 --stopping_step=10 \
			--min_epochs=20 --output=demo_results && \
		echo "Untuned defaults, one seed: see benchmarks/README.md for the tuned suites."; \
	fi

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf log log_tensorboard saved demo_results
