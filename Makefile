# careplane — see README.md. Every target installs what it needs first.
SHELL := /bin/bash
DB ?= careplane
export DB

.PHONY: help deps db db-reset run test test-matrix package images compose-test backup restore bench bench-auth bench-jwt bench-ledger bench-slots bench-booking bench-news2 bench-payments bench-notifications bench-realtime seed-large bench-requests

help:
	@echo "make run       set up everything, then serve the companion (BIND_ADDR, default 127.0.0.1:8080)"
	@echo "make test      set up everything, then run every test"
	@echo "make db        install deps, build and install the extension, migrate and seed DB=$(DB)"
	@echo "make db-reset  drop DB=$(DB) and set it up again"
	@echo "make deps      apt packages, cargo-pgrx, Postgres and Redis only"
	@echo "make test-matrix  the pgTAP suite on PostgreSQL 16 and 18 (server builds from PyPI)"
	@echo "make package   release files of the extension for PG 15, 16 and 18 into dist/ (docs/dba.md)"
	@echo "make images    build the Dockerfile's postgres and companion images with podman (timed, sizes)"
	@echo "make compose-test  docker-compose.yml up on those images: health, migrate, one authenticated call"
	@echo "make backup    pg_dump DB=$(DB) (and the roles it needs) into backups/ (BACKUP_DIR=…)"
	@echo "make restore   BACKUP_DIR=… RESTORE_DB=… restore a backup into a new database"
	@echo "make bench-auth  companion (ES256 auth) vs Express + jsonwebtoken vs no auth; writes bench/REPORT.md"
	@echo "make bench-jwt   one ES256 verification: ring, aws-lc-rs, RustCrypto p256, jsonwebtoken 9/10, openssl speed; writes bench/jwt-verify/REPORT.md"
	@echo "make bench-ledger  ledger transfers/s vs raw entry inserts; writes bench/ledger/REPORT.md"
	@echo "make bench-payments  signed webhooks stored/s vs /v1/ping, webhook-to-ledger latency; writes bench/payments/REPORT.md"
	@echo "make bench-notifications  outbox messages/s to local fake providers, one and two instances; writes bench/notifications/REPORT.md"
	@echo "make bench-realtime  10,000 realtime clients: companion vs Socket.IO 4 on Node 20; writes bench/realtime/REPORT.md"
	@echo "make bench-slots  careplane.available_slots vs the same algorithm in PL/pgSQL; writes bench/slots/REPORT.md"
	@echo "make bench-booking  book_appointment as PostgREST runs it vs raw inserts; writes bench/booking/REPORT.md"
	@echo "make bench-news2  careplane.news2 over 1,000,000 rows vs the same scoring in SQL; writes bench/news2/REPORT.md"
	@echo "make seed-large  a large database (10,000 patients, 200,000 appointments, 1,000,000 messages…) in LARGE_DB=careplane_large (SEED=18)"
	@echo "make bench-requests  the PostgREST request mix at 50 clients, demo seed vs large seed (makes it if missing); writes bench/requests/REPORT.md"
	@echo "make bench     all of them"

deps:
	@scripts/dev.sh deps

db:
	@scripts/dev.sh db

db-reset:
	@scripts/dev.sh db-reset

run:
	@scripts/dev.sh run

test:
	@scripts/dev.sh test

test-matrix:
	@scripts/dev.sh deps-build
	@scripts/test-matrix.sh

package:
	@scripts/dev.sh deps
	@scripts/package.sh

images:
	@scripts/images.sh build

compose-test:
	@scripts/dev.sh deps-build
	@scripts/compose-test.sh

backup:
	@scripts/backup.sh "$(DB)" $(BACKUP_DIR)

restore:
	@test -n "$(BACKUP_DIR)" -a -n "$(RESTORE_DB)" || { echo "usage: make restore BACKUP_DIR=backups/… RESTORE_DB=name" >&2; exit 2; }
	@scripts/restore.sh "$(BACKUP_DIR)" "$(RESTORE_DB)"

bench: bench-auth bench-jwt bench-ledger bench-slots bench-booking bench-news2 bench-payments bench-notifications bench-realtime bench-requests

bench-auth:
	@scripts/dev.sh bench

# One thread, pinned (BENCH_CPU, default 1) with its `openssl speed` child.
bench-jwt:
	@PATH="$$HOME/.cargo/bin:$$PATH" cargo build --release -p careplane-jwt-verify-bench
	@BENCH_CPU=$${BENCH_CPU:-1}; BENCH_CPU=$$BENCH_CPU taskset -c $$BENCH_CPU target/release/jwt-verify-bench --report bench/jwt-verify/REPORT.md

bench-ledger:
	@scripts/dev.sh bench-deps
	@bench/ledger/run.sh

bench-payments:
	@PGRX_RELEASE=1 scripts/dev.sh deps-build
	@bench/payments/run.sh

bench-notifications:
	@bench/notifications/run.sh

bench-realtime:
	@scripts/dev.sh deps-build
	@bench/realtime/run.sh

bench-slots:
	@scripts/dev.sh bench-deps
	@bench/slots/run.sh

bench-booking:
	@scripts/dev.sh bench-deps
	@bench/booking/run.sh

bench-news2:
	@scripts/dev.sh bench-deps
	@bench/news2/run.sh

seed-large:
	@scripts/dev.sh bench-deps
	@scripts/seed-large.sh

bench-requests:
	@scripts/dev.sh bench-deps
	@bench/requests/run.sh
