# `make run` and `make test` work on a fresh clone: each sets up what it needs first.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON312 ?= python3.12
PORT ?= 8000
ARCH ?= x86_64
# The Amazon States Language validator the tests run on the generated state machine (npm, Node 20).
ASL_VALIDATOR := build/asl/node_modules/.bin/asl-validator
ASL_VALIDATOR_VERSION := 4.0.0

.PHONY: install train run run-jobs test lint format audit audit-code audit-deps soak layers smoke batch publish policy \
	publish-layers package deploy bench tune report mlflow-ui examples postman screenshot asl-validator

install: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt requirements/training.txt requirements/layer-model.txt requirements/layer-pandas.txt
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==26.2.1  # chalice 1.34 requires pip<26.3
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

# make train [PARAMS=best.json]: tuned parameters from `make tune`
train: install
	$(PY) -m training.train $(if $(PARAMS),--params $(PARAMS))

# make tune [TRIALS=30] [TIMEOUT=seconds]: an Optuna study on train/eval, tracked by MLflow in mlruns/,
# the best parameters in best.json (then: make train PARAMS=best.json).
tune: install
	$(PY) -m training.tune --trials $(or $(TRIALS),30) $(if $(TIMEOUT),--timeout $(TIMEOUT)) --out best.json

# Re-renders report.html and model_card.md of artifacts/LATEST (ARGS="--data X.csv --metros Y.csv" for real data).
report: install artifacts/LATEST
	$(PY) -m training.report $(ARGS)

# The MLflow UI on the tuning runs, from its own venv: the full mlflow package pulls scikit-learn
# and pyarrow, which lightgbm would import in the dev venv.
mlflow-ui: .venv-mlflow/.installed
	.venv-mlflow/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port $(or $(MLFLOW_PORT),5000)

.venv-mlflow/.installed: requirements/mlflow-ui.txt
	$(PYTHON312) -m venv .venv-mlflow
	.venv-mlflow/bin/pip install --quiet -r requirements/mlflow-ui.txt
	touch $@

artifacts/LATEST:
	$(MAKE) train

# --no-autoreload: Chalice's reloader polls every file under the project (.venv included) and
# restarts the server on any write there, so `make batch` or `make postman` in another shell
# would cut it off mid-request.
run: install artifacts/LATEST
	$(VENV)/bin/chalice local --stage local --no-autoreload --port $(PORT)

# make run-jobs [THRESHOLD=bytes]: the API with S3 (moto) and the fan-out on the local runner, for the jobs API
run-jobs: install artifacts/LATEST
	$(PY) -m testkit.serve --port $(PORT) $(if $(THRESHOLD),--threshold $(THRESHOLD))

test: install $(ASL_VALIDATOR)
	$(PY) -m pytest -q

asl-validator: $(ASL_VALIDATOR)

$(ASL_VALIDATOR):
	npm install --no-save --no-audit --no-fund --prefix build/asl asl-validator@$(ASL_VALIDATOR_VERSION)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Security: bandit over the code that ships or deploys (skips justified in pyproject.toml),
# pip-audit over the layers' complete pins and over the dev venv (dev.txt, resolved).
audit: audit-code audit-deps

audit-code: install
	$(VENV)/bin/bandit -q -c pyproject.toml -r app.py chalicelib training deploy

# --strict: a package the service cannot look up fails the audit instead of being skipped
# with a warning and an exit code of 0. See SECURITY.md for where the service is unreachable.
audit-deps: install
	$(VENV)/bin/pip-audit --strict --vulnerability-service pypi --no-deps --disable-pip \
		-r requirements/layer-model.txt -r requirements/layer-pandas.txt
	$(VENV)/bin/pip-audit --strict --vulnerability-service pypi --skip-editable

# make soak [REQUESTS=100000]: the API through app.app(event, context) under good and bad input
soak: install
	$(PY) -m bench.soak --requests $(or $(REQUESTS),100000)

layers: install
	$(PY) -m deploy.layers --arch $(ARCH) --out build/layers

smoke: layers artifacts/LATEST
	$(PY) -m deploy.smoke --layers build/layers --require-app --artifacts artifacts

# make batch IN=houses.csv OUT=houses.predictions.csv
batch: install artifacts/LATEST
	$(PY) -m training.score_csv $(IN) $(OUT)

# make publish BUCKET=my-artifacts-bucket [PREFIX=models/house-prices]
publish: install artifacts/LATEST
	$(PY) -m training.publish --bucket $(BUCKET) --prefix $(or $(PREFIX),models/house-prices)

policy: install
	$(PY) -m deploy.policy --all

# make publish-layers REGION=us-east-1 [ARCH=x86_64]
publish-layers: layers
	$(PY) -m deploy.publish_layers --region $(REGION) --arch $(ARCH) --write-config

# The function zip carries 3.12 bytecode for app.py, chalicelib/ and Chalice's runtime
# (/var/task is read-only): `deploy.bytecode --prepare` builds the zip Chalice then reuses.
# PYTHONDONTWRITEBYTECODE: Chalice's hash of its inputs covers chalicelib/__pycache__,
# which importing app.py would rewrite between the two steps (see deploy/bytecode.py).
package deploy: export PYTHONDONTWRITEBYTECODE = 1

# make package [STAGE=prod]: Terraform and deployment.zip in build/ (offline)
package: install
	$(PY) -m deploy.bytecode --prepare .
	AWS_DEFAULT_REGION=$(or $(REGION),us-east-1) $(VENV)/bin/chalice package --stage $(or $(STAGE),prod) \
		--pkg-format terraform build/package-$(or $(STAGE),prod)
	$(PY) -m deploy.bytecode --check build/package-$(or $(STAGE),prod)/deployment.zip

# make deploy STAGE=prod: the functions and the API (Chalice), then the fan-out state machine and its role,
# which Chalice cannot deploy (deploy/state_machine.py reads the functions' ARNs from .chalice/deployed/).
deploy: install
	$(PY) -m deploy.bytecode --prepare .
	$(VENV)/bin/chalice deploy --stage $(STAGE)
	$(PY) -m deploy.state_machine --stage $(STAGE)

# Prints the performance table and writes bench/results/latest.json; `make bench ARGS=--quick` for a smoke run.
bench: install
	$(PY) -m bench $(ARGS)

# Rewrites examples/bad_record.400.json from the code as it is (after a deliberate change of wording).
examples: install artifacts/LATEST
	$(PY) -m examples.regenerate

# Runs the Postman collection against a running `make run` (or BASE_URL=...) with newman from npm.
postman:
	npm ci --no-audit --no-fund
	node_modules/.bin/newman run postman/house-prices.postman_collection.json \
		-e postman/local.postman_environment.json --env-var baseUrl=$(or $(BASE_URL),http://127.0.0.1:$(PORT))

# docs/page.png for the README: the web page in Chromium after one estimate.
screenshot: install artifacts/LATEST
	$(PY) -m docs.screenshot
