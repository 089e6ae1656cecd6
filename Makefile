# The two commands of the README. Each one does all set-up on a fresh machine first.
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

# The main job on the embedded default (PySCF, local cores): a few small molecules at
# B3LYP/6-31G(2df,p) -> demo.h5, then the summary table and the store's counts.
demo: setup
	.venv/bin/hessflow compute examples/molecules.smi --store demo.h5
	.venv/bin/hessflow info demo.h5

test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/python -m benchmarks.run_all
