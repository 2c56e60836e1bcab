# Thin wrappers; the scripts are the real commands.
.PHONY: up test lint check-deploy

up:            ## Run the whole suite on embedded defaults (Ctrl-C stops it).
	scripts/up.sh

test:          ## Every test: lints, unit, integration (in-process S3), end-to-end (Garage, Chromium).
	scripts/test.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
