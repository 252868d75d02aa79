# Aegis recipes. Each is a thin wrapper over cargo or the binary, so nothing works only through `just`.
# Get `just` with `pip install rust-just` (about a second) or `cargo install just` (about 2 minutes).

# List the recipes.
default:
    @just --list

# Run the service (local mode when no database is configured).
run *ARGS:
    cargo run --release -- {{ARGS}}

# Run a debug build of the service.
dev *ARGS:
    cargo run -- {{ARGS}}

# Apply database migrations and exit.
migrate:
    cargo run --release -- migrate

# Create a site: just create-site --name Demo --domain demo.example.com … (docs/cli.md).
create-site *ARGS:
    cargo run --release -- sites create {{ARGS}}

# Update a site: just update-site SITE --webhook-url URL ….
update-site *ARGS:
    cargo run --release -- sites update {{ARGS}}

# List the sites (--json for JSON).
list-sites *ARGS:
    cargo run --release -- sites list {{ARGS}}

# Create a user and queue their verification email: just create-user --site SITE --email ADDRESS.
create-user *ARGS:
    cargo run --release -- users create {{ARGS}}

# List a site's users: just list-users --site SITE.
list-users *ARGS:
    cargo run --release -- users list {{ARGS}}

# Queue a new verification email: just resend-verification USER --site SITE.
resend-verification *ARGS:
    cargo run --release -- users resend-verification {{ARGS}}

# Check the configuration, database, migrations, mail transport, webhook hosts and clock.
doctor *ARGS:
    cargo run --release -- doctor {{ARGS}}

# Run every test (starts its own PostgreSQL; needs nothing running).
test *ARGS:
    cargo test --workspace {{ARGS}}

# Drive the hosted pages in headless Chromium and save the README's screenshots to docs/images/.
screenshots:
    bash scripts/ensure-chromium.sh
    AEGIS_SCREENSHOTS=docs cargo test -p aegis-http --test it pages_browser

# Format the code.
fmt:
    cargo fmt --all

# Lint as CI does.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    bash scripts/check-domain-purity.sh

# Everything CI runs.
ci:
    bash .ci/run

# Fuzz the API with schemathesis from the served OpenAPI document (installs it into target/).
fuzz:
    bash scripts/fuzz-api.sh

# Measure throughput, latency and memory with wrk (starts its own instance; needs `apt-get install wrk`).
load SECONDS="10" CONNECTIONS="32":
    bash scripts/load.sh {{SECONDS}} {{CONNECTIONS}}

# /me and login at 10,000 and at 1,000,000 generated users, their ratio, and EXPLAIN of the hot queries (needs wrk; about 5 minutes).
million SECONDS="10":
    bash scripts/million.sh {{SECONDS}}

# Delete local mode's data (the managed database and the generated master key).
reset-local:
    rm -rf .aegis-data

# Build the container image, tagged aegis:<VERSION> and aegis:latest.
docker-build:
    docker build -f deploy/Dockerfile --build-arg VERSION="$(cat VERSION)" -t aegis:"$(cat VERSION)" -t aegis:latest .

# Push both tags of the image to REGISTRY (e.g. ghcr.io/example); run `just docker-build` first.
docker-publish REGISTRY:
    docker tag aegis:"$(cat VERSION)" {{REGISTRY}}/aegis:"$(cat VERSION)"
    docker tag aegis:latest {{REGISTRY}}/aegis:latest
    docker push {{REGISTRY}}/aegis:"$(cat VERSION)"
    docker push {{REGISTRY}}/aegis:latest

# Start PostgreSQL 16 and Aegis with Docker Compose, configured by ./.env (see .env.example).
compose-up:
    AEGIS_IMAGE_VERSION="$(cat VERSION)" docker compose --env-file .env -f deploy/docker-compose.yml up -d --build

# How long importing USERS users with existing hashes takes (release build, local mode).
import-bench USERS="100000":
    bash scripts/import-bench.sh {{USERS}}

# Does answering take longer when an address has an account? Medians per case (release build).
enumeration SAMPLES="31":
    bash scripts/enumeration.sh {{SAMPLES}}
