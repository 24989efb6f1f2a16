# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test check bench install clean

install:
	scripts/bootstrap

run: install
	WATCHWORD_ENV=$${WATCHWORD_ENV:-development} .venv/bin/watchword serve

test:
	scripts/test

check: install
	scripts/check

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
