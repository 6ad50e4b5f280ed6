# Two commands do everything on a fresh machine (see README):
#   make reproduce   set up, then run the paper DAG (every table and figure) on the synthetic default
#                    and answer the headline claim (C2) with 3 seeds (Snakefile `reproduce`)
#   make test        set up, then run the test suite
#   make claims      set up, then build the claims ledger (hours on 2 CPU cores; resumes)
#   make track       dvc add the data, runs and evaluation JSONs of DATA/SCALE (then git add the
#                    .dvc files and dvc push); README, "DVC"
# TORCH selects the PyTorch to install first; the default is the CPU build pinned for this
# project's CI machines. On a CUDA machine: make setup TORCH=torch  (or your own wheel/index).
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
CORES ?= all
SNAKEMAKE_ARGS ?=
DATA ?= synthetic
SCALE ?= smoke

.PHONY: setup test reproduce claims track clean-venv

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null
	$(VENV)/bin/pip install $(TORCH)
	$(VENV)/bin/pip install -e '.[test,workflow]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(VENV)/bin/python -m pytest -q

# --prioritize: the headline claim's study trainings (10-20 min each) start first and the many short
# smoke jobs fill the cores around them; scheduled last, one of them ran alone at the end for ~5 min
reproduce: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --profile workflow/profiles/local --cores $(CORES) reproduce \
	    --prioritize headline_ledger $(SNAKEMAKE_ARGS)

# --prioritize: the headline claim's runs first, so that `sa4depth claims --allow-missing` answers it
# (the rest listed as pending) hours before the whole ledger is trained
claims: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --profile workflow/profiles/local --cores $(CORES) claims \
	    --prioritize claims_headline_runs $(SNAKEMAKE_ARGS)

# the directories of one (data, scale) that exist; data/real is the user's own (dvc add it directly)
track:
	@dirs=""; for d in $(if $(filter synthetic,$(DATA)),data/synthetic/$(SCALE)) runs/$(DATA)/$(SCALE) \
	    results/metrics/$(DATA)/$(SCALE); do [ -d "$$d" ] && dirs="$$dirs $$d"; done; \
	if [ -z "$$dirs" ]; then echo "make track: nothing to track for DATA=$(DATA) SCALE=$(SCALE)" >&2; exit 1; fi; \
	$(VENV)/bin/dvc add $$dirs && \
	echo "next: git add $$(for d in $$dirs; do printf '%s.dvc ' $$d; done)&& git commit && $(VENV)/bin/dvc push"

clean-venv:
	rm -rf $(VENV)
