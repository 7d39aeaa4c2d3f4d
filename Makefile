# The two commands of the README: `make run` (set up and run the app) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTEST_ARGS ?=
# pytest-xdist processes; each has its own test database, broker keys or folder, and stored files.
PYTEST_WORKERS ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test loadtest install install-dev lint format lock migrate superuser web worker clean

$(VENV)/.runtime-installed: requirements.txt scripts/system-packages.sh
	scripts/system-packages.sh runtime
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	scripts/system-packages.sh test
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.load-installed: $(VENV)/.dev-installed requirements-load.txt
	$(BIN)/python -m pip install -q -r requirements-load.txt
	touch $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

## run: install everything, migrate the embedded SQLite database, run the web server and a Celery worker.
run: install migrate
	PATH="$(BIN):$$PATH" $(BIN)/honcho --procfile Procfile.dev start

## test: lint, the migrations gate and the whole pytest suite (DATABASE_URL/REDIS_URL pick the services).
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=covidxray.settings.test $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## loadtest: gunicorn, two Celery workers, MariaDB and Redis under 20 simulated doctors (Locust); prints a report.
loadtest: $(VENV)/.load-installed
	$(BIN)/python scripts/loadtest/run.py

migrate: install
	$(BIN)/python manage.py migrate --noinput

superuser: install
	$(BIN)/python manage.py createsuperuser

web: install
	$(BIN)/python manage.py runserver 127.0.0.1:8000

worker: install
	DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-covidxray.settings.local} $(BIN)/celery -A covidxray worker --loglevel=INFO --concurrency=1

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## lock: recompile the pinned requirement files from requirements*.in.
lock: install-dev
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe -o requirements.txt requirements.in
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe -o requirements-dev.txt requirements-dev.in
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe -o requirements-load.txt requirements-load.in

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
