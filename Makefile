# consulate — build, test, run. `make help` lists the targets.
CC      ?= cc
SANITIZE ?=
PKGS    := libcjson sqlite3 libcurl libssh2 libsodium yaml-0.1 cmocka

ifeq ($(SANITIZE),)
BUILD   := build
OPT     := -O2
else
BUILD   := build/san
OPT     := -O1 -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN    := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
# pkg-config is asked when a recipe first needs its answer, not when this file is read: on a
# bare machine the libraries are only there once `deps` (an order-only prerequisite of every
# compile and link below) has installed them. Each answer is then kept for the rest of the run.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CFLAGS  = -std=c11 $(OPT) -g $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(OPT) -Wl,--as-needed $(EXTRA_LDFLAGS)
LIBS    = -lcivetweb $(PKG_LIBS) -lcrypto -lpthread -lm

SERVER_SRCS := $(wildcard server/*.c)
SERVER_OBJS := $(patsubst server/%.c,$(BUILD)/obj/server/%.o,$(SERVER_SRCS)) \
               $(BUILD)/obj/gen/migrations.o $(BUILD)/obj/gen/webfiles.o $(BUILD)/obj/gen/commit.o
LIB_OBJS    := $(filter-out $(BUILD)/obj/server/main.o,$(SERVER_OBJS))
MIGRATIONS  := $(sort $(wildcard migrations/*.sql))
# the directories too: removing a file changes only its directory
WEB_FILES   := $(shell find web -type f ! -name '.*') $(shell find web -type d)

UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
HTTP_SRCS   := $(wildcard tests/http/test_*.c)
HTTP_BINS   := $(patsubst tests/http/%.c,$(BUILD)/tests/http/%,$(HTTP_SRCS))
HTTP_HELP   := $(filter-out $(HTTP_SRCS),$(wildcard tests/http/*.c)) $(wildcard tests/nodes/*.c)
SIM_SRCS    := $(wildcard tests/sim/*.c)
BENCH_SRCS  := $(wildcard tests/bench/bench_*.c)
BENCH_BINS  := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRCS))

.SECONDARY:

.PHONY: all deps test-deps demo-deps test unit-test http-test e2e bench fuzz run demo clean help format
.PHONY: dist deb screenshots

# The browser tests run in the plain build only (the sanitizer run repeats the C tests).
E2E := $(if $(SANITIZE),,./scripts/e2e.sh)
all: deps $(BUILD)/consulate $(if $(SIM_SRCS),$(BUILD)/consul-sim)

help:
	@echo "make            build $(BUILD)/consulate (installs missing Debian packages first)"
	@echo "make test       build and run every test"
	@echo "make e2e        the browser tests only (Chromium)"
	@echo "make screenshots the browser tests, keeping their pictures in docs/screenshots/"
	@echo "make bench      run the benchmarks and print their figures"
	@echo "make fuzz       fuzz the request-body path for 5 minutes (FUZZ_TARGET=cluster|compose, FUZZ_SECONDS=N)"
	@echo "make run        run the console against the configured Consul"
	@echo "make dist       the offline bundle $(DIST_TGZ)"
	@echo "make deb        the Debian package $(DEB)"
	@echo "make demo       run the console against a simulated 4-server datacenter on fake hosts (add consul-5; admin + approver)"
	@echo "make SANITIZE=address,undefined test   the same tests under sanitizers"

deps:
	@./scripts/deps.sh

test-deps:
	@./scripts/deps.sh --with-test

demo-deps:
	@./scripts/deps.sh --with-demo

$(BUILD)/gen/migrations.c: $(MIGRATIONS) scripts/embed-migrations.sh | deps
	@mkdir -p $(dir $@)
	./scripts/embed-migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

# `consulate version` names the commit: "unknown" outside a git checkout of this tree.
# $(BUILD)/gen/commit.txt is rewritten (when reading this file) only when the commit changed,
# so an unchanged tree relinks nothing.
GIT_COMMIT := $(shell [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ] && \
                git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
COMMIT_TXT := $(shell mkdir -p $(BUILD)/gen && (echo '$(GIT_COMMIT)' | \
                cmp -s - $(BUILD)/gen/commit.txt || echo '$(GIT_COMMIT)' > $(BUILD)/gen/commit.txt))
$(BUILD)/gen/commit.c: $(BUILD)/gen/commit.txt
	@printf '#include "cli_version.h"\nconst char consulate_commit[] = "%s";\n' "$$(cat $<)" > $@

# The UI is compiled in (web_root serves it from disk instead, while developing).
$(BUILD)/gen/webfiles.c: $(WEB_FILES) scripts/embed-web.sh scripts/bundle-web.sh | deps
	@mkdir -p $(dir $@)
	./scripts/embed-web.sh web > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# civetweb dlopens "libssl.so": the binary's RPATH ($ORIGIN/lib, as DT_RPATH so that it
# also applies to dlopen from libcivetweb) finds the OpenSSL 3 shim in $(BUILD)/lib first.
$(BUILD)/consulate: $(SERVER_OBJS) $(BUILD)/lib/libssl.so | deps
	$(CC) $(LDFLAGS) -Wl,--disable-new-dtags -Wl,-rpath,'$$ORIGIN/lib' -o $@ $(SERVER_OBJS) $(LIBS)

$(BUILD)/lib/libssl.so: compat/libssl_compat.c | deps
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -l:libssl.so.3 -l:libcrypto.so.3

# civetweb dlopens "libcrypto.so" too, which only libssl-dev provides: the second shim
# (compat/libcrypto_compat.c), beside the first.
$(BUILD)/lib/libcrypto.so: compat/libcrypto_compat.c | deps
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -Wl,--no-as-needed -l:libcrypto.so.3
$(BUILD)/consulate: $(BUILD)/lib/libcrypto.so

$(BUILD)/consul-sim: $(patsubst %.c,$(BUILD)/obj/%.o,$(SIM_SRCS)) $(BUILD)/obj/server/util.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# tests/nodes/harness.sh: the fake-node harness as a program (make demo, by hand).
$(BUILD)/fake-nodes: $(BUILD)/obj/tests/nodes/main/fake_nodes.o $(patsubst %.c,$(BUILD)/obj/%.o,$(HTTP_HELP)) $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/http/%: $(BUILD)/obj/tests/http/%.o $(patsubst %.c,$(BUILD)/obj/%.o,$(HTTP_HELP)) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(patsubst %.c,$(BUILD)/obj/%.o,$(HTTP_HELP)) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Packages (scripts/dist.sh, scripts/deb.sh; packaging/). The version is include/app.h's.
VERSION  := $(shell sed -n 's/^.define CONSULATE_VERSION "\(.*\)"$$/\1/p' include/app.h)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DIST_TGZ := $(BUILD)/dist/consulate-$(VERSION)-linux-$(DEB_ARCH).tar.gz
DEB      := $(BUILD)/consulate_$(VERSION)_$(DEB_ARCH).deb
PACKAGING := $(wildcard packaging/* packaging/deb/*) README.md

dist: $(DIST_TGZ)
deb: $(DEB)

$(DIST_TGZ): $(BUILD)/consulate $(BUILD)/lib/libssl.so $(BUILD)/lib/libcrypto.so scripts/dist.sh $(PACKAGING)
	@BUILD=$(BUILD) VERSION=$(VERSION) ARCH=$(DEB_ARCH) ./scripts/dist.sh

$(DEB): $(BUILD)/consulate $(BUILD)/lib/libssl.so $(BUILD)/lib/libcrypto.so scripts/deb.sh $(PACKAGING)
	@BUILD=$(BUILD) VERSION=$(VERSION) ARCH=$(DEB_ARCH) ./scripts/deb.sh

# tests/http/test_dist checks the packages: `make test` builds them first.
test http-test: $(DIST_TGZ) $(DEB)

# Runs each test in a network namespace of its own (scripts/run-tests.sh; tests/netns.c).
$(BUILD)/tests/netns: tests/netns.c | deps
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 $(WARN) -D_GNU_SOURCE -o $@ $<

# tests/http/test_bench runs bench_audit (on a small database) to check its verdicts.
test: test-deps all $(UNIT_BINS) $(HTTP_BINS) $(BUILD)/tests/bench/bench_audit $(BUILD)/fake-nodes $(BUILD)/tests/netns
	@BUILD=$(BUILD) ./scripts/run-tests.sh $(UNIT_BINS) $(HTTP_BINS) $(E2E)

e2e: test-deps all $(BUILD)/fake-nodes $(BUILD)/tests/netns
	@BUILD=$(BUILD) ./scripts/run-tests.sh ./scripts/e2e.sh

# The README's pictures: the browser tests take them (build/e2e/docs/), this keeps them.
screenshots: e2e
	@mkdir -p docs/screenshots
	cp build/e2e/docs/*.png docs/screenshots/

unit-test: all $(UNIT_BINS) $(BUILD)/tests/netns
	@BUILD=$(BUILD) ./scripts/run-tests.sh $(UNIT_BINS)

http-test: all $(HTTP_BINS) $(BUILD)/tests/bench/bench_audit $(BUILD)/fake-nodes $(BUILD)/tests/netns
	@BUILD=$(BUILD) ./scripts/run-tests.sh $(HTTP_BINS)

bench: test-deps all $(BENCH_BINS) $(BUILD)/tests/netns
	@BUILD=$(BUILD) ./scripts/bench.sh $(BENCH_BINS)

# libFuzzer with clang; `make test` only replays the seed corpus (tests/unit/test_fuzz_body.c).
fuzz: deps
	@./scripts/fuzz.sh $(or $(FUZZ_TARGET),body) $(or $(FUZZ_SECONDS),300)

run: all
	$(BUILD)/consulate serve $(if $(CONFIG),--config $(CONFIG))

demo: demo-deps all $(BUILD)/fake-nodes
	@BUILD=$(BUILD) ./scripts/demo.sh

clean:
	rm -rf build

format:
	clang-format -i server/*.c include/*.h tests/*/*.c

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
