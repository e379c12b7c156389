# Flow: `make up` runs the whole platform, `make test` runs every test.
SHELL := /bin/bash
PY := .venv/bin/python
FLOWCTL := $(PY) scripts/flowctl.py

.PHONY: help setup up down restart status migrate logs lint test test-unit test-e2e test-fuzz bench bench-smoke

help:
	@echo "make up       set up this machine and start every Flow service"
	@echo "make down     stop the services make up started"
	@echo "make test     lint, type-check and run every test (what CI runs)"
	@echo "make test-fuzz  schemathesis against every service's OpenAPI (part of make test)"
	@echo "make lint     ruff + mypy"
	@echo "make migrate  provision the database, run every migration, declare the event topology"
	@echo "make logs     follow every service's JSON log"
	@echo "make bench    the performance scenarios on their own fleet (bench/README.md)"

setup:
	@bash scripts/setup.sh

up: setup
	@$(FLOWCTL) up

down:
	@if [ -x $(PY) ]; then $(FLOWCTL) down; fi

restart: down up

status:
	@$(FLOWCTL) status

migrate: setup
	@$(FLOWCTL) migrate

logs:
	@tail -n 50 -F var/log/*.log

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest
	$(MAKE) bench-smoke
	$(MAKE) test-fuzz

test-unit: setup
	.venv/bin/pytest -m "not e2e"

test-e2e: setup
	.venv/bin/pytest -m e2e

# schemathesis against every service's OpenAPI on its own fleet (port offset 22000), every
# role, a few minutes; it must find nothing. Not in pytest's testpaths, so only here.
test-fuzz: setup
	.venv/bin/pytest tests/fuzz -m fuzz $(FUZZ_ARGS)

# The bench runs its own isolated fleet (port offset 21000, own database, vhost and
# Redis prefix) and removes it afterwards; results go to bench/results/<UTC time>/.
BENCH := PYTHONPATH=bench $(PY) -m flow_bench

bench: setup
	$(BENCH) full --update-readme $(BENCH_ARGS)

# Every scenario for a few seconds at tiny scale: the harness works and the invariants
# hold after load (never a speed). Part of `make test`.
bench-smoke: setup
	$(BENCH) smoke $(BENCH_ARGS)
