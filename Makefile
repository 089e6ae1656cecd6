# The two commands of the README. Each one does all set-up on a fresh machine first.
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

# The main job on the embedded default (PySCF, local cores): a few small molecules at
# B3LYP/6-31G(2df,p) through the workflow -> examples/laptop.h5, then the summary table and counts.
demo: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/hessflow run examples/laptop.yaml
	.venv/bin/hessflow info examples/laptop.h5

test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/python -m benchmarks.run_all
