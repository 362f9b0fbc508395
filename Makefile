# The project's entry points. README.md's quick start: `make demo`, `make test`.

CARGO ?= cargo

.PHONY: all build release test unit lint fmt fuzz images image demo demo-down bench deps

all: build

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release -p appliance

deps:
	scripts/install-deps

# The whole suite, on a fresh machine: installs what is missing, then runs
# every test of the workspace under nextest.
test: deps images image
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --profile ci

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Fuzz the VRRP packet parser for a minute with cargo-fuzz (libFuzzer). The
# sanitizer flags it needs are nightly-only; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them.
fuzz:
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --target-dir target vrrp_packet -- -max_total_time=60

# Docker's compose command: the v2 plugin if there, else docker-compose v1.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

# The container images (appliance, nginx real server, client), each rebuilt
# only when its inputs changed; the first build debootstraps a Debian base.
images:
	images/build

# The flashable disk image: target/image/appliance.img (raw, GPT; BIOS and
# UEFI) and appliance.qcow2, with their sizes and checksums.
image:
	images/disk/build

# The demo cluster in containers: a VIP failing over between two directors.
demo: images
	COMPOSE="$(COMPOSE)" compose/demo up

# Removes every container, network and volume `make demo` made.
demo-down:
	COMPOSE="$(COMPOSE)" compose/demo down

# The failover benchmark: the appliance and keepalived side by side on a
# netns LAN (runs as root, ~15 min; TRIALS=2 for a quick run; rewrites
# docs/benchmarks.md), then the checker against 10,000 real servers (its
# table appended to docs/benchmarks.md; docs/benchmarks-checker.md explains
# it), then the checker beside keepalived's against 500 in a qemu VM
# (keepalived's needs IPVS; ~2 min; appended too), then the disk image's
# size and boot time (appended too).
bench:
	$(CARGO) build --release -p appliance
	$(CARGO) run --release -p appliance-tests --bin failover_bench
	$(CARGO) run --release -p appliance-tests --bin checker_bench -- --servers 10000 --seconds 30 --steered --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin checker_vm_bench -- --servers 500 --seconds 30 --append docs/benchmarks.md
	images/disk/build
	$(CARGO) run --release -p appliance-tests --bin image_bench -- --boots 5 --append docs/benchmarks.md
