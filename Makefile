.PHONY: run test bench setup

run:  ## run the whole system locally (moto server, API, email pump, mailbox, login page)
	@bash scripts/run.sh

test:  ## install what tests need and run every test
	@bash scripts/test.sh

bench:  ## run the benchmarks and rewrite bench/RESULTS.md; ARGS=--smoke: a quick check that writes nothing
	@bash scripts/bench.sh $(ARGS)

setup:
	@bash scripts/setup.sh
