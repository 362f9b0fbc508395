# The project's entry points. README.md's quick start: `make demo`, `make test`.

CARGO ?= cargo

.PHONY: all build release test unit lint fmt fuzz images image demo demo-down bench deps install uninstall deb

all: build

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release -p appliance

deps:
	scripts/install-deps

# The whole suite, on a fresh machine: installs what is missing, builds the
# images and the Debian package the tests read, then runs every test of the
# workspace under nextest.
test: deps images image deb
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --profile ci

# Where `make install` puts each part (the GNU names). DESTDIR stages the
# tree under another root, without root rights (the Debian package does);
# BINARY=PATH installs that appliance binary instead of building the static
# release one with images/build.
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/appliance
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# zsh's own default place; the Debian package uses Debian's vendor one.
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
BINARY ?=
# The man pages' date: the last commit's day, so the same commit gives the
# same pages.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
# The examples installed into $(DOCDIR)/examples: one LVS-NAT director in
# the appliance's TOML and in keepalived's syntax.
EXAMPLE_TOML = appliance/examples/appliance.toml
EXAMPLE_KEEPALIVED = appliance/examples/keepalived.conf

# The static binary, its systemd unit (appliance/systemd/appliance.service.in
# with the paths filled in), the man pages (section 8, written by the binary
# itself, gzipped), bash, zsh and fish completions, README.md, docs/config.md
# and the examples. The config, $(SYSCONFDIR)/appliance/appliance.toml, is the
# admin's to write: nothing is installed under $(SYSCONFDIR).
install:
	@set -eu; \
	bin='$(BINARY)'; \
	[ -n "$$bin" ] || bin=$$(images/build --static-binary); \
	gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  appliance/systemd/appliance.service.in >"$$gen/appliance.service"; \
	if grep -n '@[A-Z_]*@' "$$gen/appliance.service"; then \
	  echo "make install: placeholders left in appliance.service" >&2; exit 1; \
	fi; \
	SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' "$$bin" man --out "$$gen/man" >/dev/null; \
	gzip -9n "$$gen"/man/*.8; \
	for shell in bash zsh fish; do "$$bin" completions $$shell >"$$gen/$$shell"; done; \
	install -v -D -m 755 "$$bin" '$(DESTDIR)$(SBINDIR)/appliance'; \
	install -v -D -m 644 "$$gen/appliance.service" '$(DESTDIR)$(UNITDIR)/appliance.service'; \
	install -v -d -m 755 '$(DESTDIR)$(MANDIR)/man8'; \
	install -v -m 644 "$$gen"/man/*.8.gz '$(DESTDIR)$(MANDIR)/man8/'; \
	install -v -D -m 644 "$$gen/bash" '$(DESTDIR)$(BASHCOMPDIR)/appliance'; \
	install -v -D -m 644 "$$gen/zsh" '$(DESTDIR)$(ZSHCOMPDIR)/_appliance'; \
	install -v -D -m 644 "$$gen/fish" '$(DESTDIR)$(FISHCOMPDIR)/appliance.fish'; \
	install -v -D -m 644 README.md '$(DESTDIR)$(DOCDIR)/README.md'; \
	install -v -D -m 644 docs/config.md '$(DESTDIR)$(DOCDIR)/config.md'; \
	install -v -D -m 644 $(EXAMPLE_TOML) '$(DESTDIR)$(DOCDIR)/examples/appliance.toml'; \
	install -v -D -m 644 $(EXAMPLE_KEEPALIVED) '$(DESTDIR)$(DOCDIR)/examples/keepalived.conf'

# The Debian package (bookworm): target/debian/appliance_<version>_amd64.deb,
# `make install` under /usr with the unit enabled and nothing in /etc
# (scripts/build-deb says what is in it); prints its path, size and SHA-256.
# BINARY=PATH packs that binary instead of building the static one.
deb:
	scripts/build-deb $(if $(BINARY),--binary '$(BINARY)')

# Removes what `make install` put there (same variables).
uninstall:
	rm -f '$(DESTDIR)$(SBINDIR)/appliance' '$(DESTDIR)$(UNITDIR)/appliance.service' \
	  '$(DESTDIR)$(MANDIR)'/man8/appliance.8.gz '$(DESTDIR)$(MANDIR)'/man8/appliance-*.8.gz \
	  '$(DESTDIR)$(BASHCOMPDIR)/appliance' '$(DESTDIR)$(ZSHCOMPDIR)/_appliance' \
	  '$(DESTDIR)$(FISHCOMPDIR)/appliance.fish' \
	  '$(DESTDIR)$(DOCDIR)/README.md' '$(DESTDIR)$(DOCDIR)/config.md' \
	  '$(DESTDIR)$(DOCDIR)/examples/appliance.toml' '$(DESTDIR)$(DOCDIR)/examples/keepalived.conf'
	rmdir --ignore-fail-on-non-empty '$(DESTDIR)$(DOCDIR)/examples' '$(DESTDIR)$(DOCDIR)' 2>/dev/null || true

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Fuzz every parser of outside input with cargo-fuzz (libFuzzer), one
# target after the other (fuzz/README.md): each for FUZZ_RUNS executions,
# or FUZZ_TIME seconds when set (`make fuzz FUZZ_TIME=60`); FUZZ_TARGETS
# picks some. A run starts from fuzz/seeds/TARGET/ and fuzz/corpus/TARGET/
# and grows the corpus; cmin then shrinks it to a smallest set of inputs
# covering the same code (set cover, hit counts ignored: the corpus lives
# in the repository and stays small). A crash, an input slower than
# FUZZ_TIMEOUT seconds or one allocating past libFuzzer's 2 GB stops the
# run, its input in fuzz/artifacts/TARGET/. The sanitizer flags cargo-fuzz
# needs are nightly-only; RUSTC_BOOTSTRAP lets the stable toolchain accept
# them.
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?=
FUZZ_TIMEOUT ?= 10
FUZZ_TARGETS ?= $(sort $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs))))
FUZZ = RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

fuzz:
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  $(FUZZ) run --target-dir target $$target corpus/$$target seeds/$$target -- \
	    -timeout=$(FUZZ_TIMEOUT) \
	    $(if $(FUZZ_TIME),-max_total_time=$(FUZZ_TIME),-runs=$(FUZZ_RUNS)) && \
	  $(FUZZ) cmin --target-dir target $$target -- -set_cover_merge=1 -use_counters=0 || exit 1; \
	done

# Docker's compose command: the v2 plugin if there, else docker-compose v1.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

# The container images (appliance, nginx real server, client, systemd host,
# Prometheus), each rebuilt only when its inputs changed; the first build
# debootstraps a Debian base.
images:
	images/build

# The flashable disk image: target/image/appliance.img (raw, GPT; BIOS and
# UEFI) and appliance.qcow2, with their sizes and checksums.
image:
	images/disk/build

# The demo cluster in containers: a VIP failing over between two directors,
# then Prometheus scraping both; prints where their status pages, metrics
# and Prometheus answer. Installs what it needs first, as `make test` does
# (scripts/install-deps).
demo: deps images
	COMPOSE="$(COMPOSE)" compose/demo up

# Removes every container, network and volume `make demo` made.
demo-down:
	COMPOSE="$(COMPOSE)" compose/demo down

# The failover benchmark: the appliance and keepalived side by side on a
# netns LAN (runs as root, ~15 min; TRIALS=2 for a quick run; rewrites
# docs/benchmarks.md), then the master's advert timing under a VRRP flood
# and a large reload, side by side too, and under a stalled netlink (the
# appliance built with its fail points; ~5 min; appended), then the probes
# a client loses to a planned switchover and a restart of the master, side
# by side (~10 min; appended), then the probes and long-lived connections
# lost to a drain, a reload and a restart over IPVS in a qemu VM, side by
# side (~3 min; appended), then the checker
# against 10,000 real servers (its table appended to docs/benchmarks.md;
# docs/benchmarks-checker.md explains it), then the checker beside keepalived's against 500 in a qemu VM
# (keepalived's needs IPVS; ~2 min; appended too), then 1,000 to 10,000
# services loaded into IPVS in a qemu VM by ipvsadm -R and by the appliance
# (up to ~30 min; appended too), then scale-out: one of three directors
# behind FRR's ECMP dying, connections broken with and without sloppy_tcp
# and the router's convergence, in a qemu VM, and the flows a real
# server's removal moves (~15 min; appended too), then the disk image's
# size and boot time (appended too). The failover and checker benches also write their samples
# as CSV (docs/bench-data/), and `plots` then draws docs/img/*.svg from them.
bench: deps
	$(CARGO) build --release -p appliance --features failpoints
	cp target/release/appliance target/release/appliance-failpoints
	$(CARGO) build --release -p appliance
	$(CARGO) run --release -p appliance-tests --bin failover_bench
	$(CARGO) run --release -p appliance-tests --bin jitter_bench -- --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin operations_bench -- --trials 5 --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin operations_bench -- --vm --trials 5 --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin checker_bench -- --servers 10000 --seconds 30 --steered --append docs/benchmarks.md --csv docs/bench-data/checker.csv
	$(CARGO) run --release -p appliance-tests --bin checker_vm_bench -- --servers 500 --seconds 30 --append docs/benchmarks.md --csv docs/bench-data/checker-vm.csv
	$(CARGO) run --release -p appliance-tests --bin ipvs_bench -- --services 1000,2000,5000,10000 --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin scaleout_bench -- --trials 3 --append docs/benchmarks.md
	images/disk/build
	$(CARGO) run --release -p appliance-tests --bin image_bench -- --boots 5 --append docs/benchmarks.md
	$(CARGO) run --release -p appliance-tests --bin plots
