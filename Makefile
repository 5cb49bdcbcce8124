# gallery — run `make help` for the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
# The tests stop workers mid-job through a hook that release builds do not have.
TEST_FEATURES := --features test-hooks

# Local services for `make run-services`: Redis, RabbitMQ and the S3 test server on loopback.
LOCAL_ENV := GALLERY_LISTEN=127.0.0.1:8080 GALLERY_HEALTH_LISTEN=127.0.0.1:8081 \
	GALLERY_S3_ENDPOINT=http://127.0.0.1:9100 GALLERY_S3_ACCESS_KEY=gallery-test \
	GALLERY_S3_SECRET_KEY=gallery-test-secret GALLERY_REDIS_URL=redis://127.0.0.1:6379 \
	GALLERY_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f

.PHONY: help build run run-services up down logs test test-deps bench fmt lint
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-13s %s\n", $$1, $$2}'

test-deps: ## Install what the tests need, check Redis and RabbitMQ, start the S3 test server, fetch the photos
	@bash tests/support/install-deps.sh
	@bash tests/support/install-browser.sh
	@bash tests/support/services.sh
	@bash tests/support/s3-server.sh
	@bash ../shared/photos/fetch.sh target/photos >/dev/null

test: test-deps ## Run every test on the services and on the embedded backends, then the page in Chromium
	$(CARGO) test --all-targets --locked $(TEST_FEATURES)
	$(CARGO) build --locked $(TEST_FEATURES)
	node --test tests/browser/
	GALLERY_BROWSER_BACKENDS=embedded node --test tests/browser/
	node --test tests/compose/

run: ## Run the whole gallery in one process, data in ./data (http://127.0.0.1:8080)
	$(CARGO) run --release --locked -- serve --listen 127.0.0.1:8080

run-services: test-deps ## Run `gallery serve` against local Redis, RabbitMQ and S3 instead
	$(CARGO) build --release --locked
	$(LOCAL_ENV) target/release/gallery serve

build: ## Build the release binary (target/release/gallery)
	$(CARGO) build --release --locked

up: ## Start the whole stack with Docker (http://localhost:8080)
	docker compose up -d --build

down: ## Stop the Docker stack (data stays in its volumes)
	docker compose down

logs: ## Follow the Docker stack's logs
	docker compose logs -f

PHOTOS ?= target/photos
bench: build ## Engine vs libvips and Pillow, one core, on real photos; then the pipeline against the engine (services on Garage, built on first use), then serving (wrk)
	@bash ../shared/photos/fetch.sh $(PHOTOS) >/dev/null
	@echo "== engine (one core, preview 1280 + thumb 320 at q82) against libvips and Pillow"
	@python3 tests/support/bench-table.py --bin target/release/gallery --photos $(PHOTOS)
	@echo "== pipeline (serve, then web + worker on the services; 2 jobs at once)"
	@python3 tests/support/pipeline-bench.py --bin target/release/gallery --photos $(PHOTOS)
	@echo "== serving (a logged-in person's images, wrk)"
	@bash tests/support/services.sh >/dev/null && bash tests/support/s3-server.sh >/dev/null
	@bash tests/support/serving-bench.sh

fmt: ## Format the code
	$(CARGO) fmt

lint: ## Clippy with warnings as errors, and a format check
	$(CARGO) clippy --all-targets --locked $(TEST_FEATURES) -- -D warnings
	$(CARGO) fmt --check
