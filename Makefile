# nestvm build. `make` builds the release monitor and the guest images,
# `make test` builds the sanitizer variant and runs every test.

CC ?= gcc
CLANG ?= clang
BUILD := build
WARN := -Wall -Wextra -Werror
CFLAGS_COMMON := -std=gnu11 $(WARN) -D_GNU_SOURCE -Isrc -MMD -MP -pthread
# libcrypto (the migration stream's AES-256-GCM and HMAC) is not linked: it
# is loaded when a migration needs it (src/snapshot/migrate_stream.c).
#
# jansson and liburing are linked statically where their archives are
# installed: as shared libraries they cost every start of nestvm 0.1 ms and
# 0.28 MiB of RSS (loading, relocating and faulting in two more objects:
# `nestvm version` 0.97 -> 0.87 ms, 1.80 -> 1.52 MiB). `make STATIC=
# STATIC_LIBS=` links them shared, as a distribution would want for security
# updates (the static release monitor, STATIC below, links archives only).
STATIC_LIBS ?= jansson uring
link_lib = $(if $(and $(filter $(1),$(STATIC_LIBS)),$(wildcard $(shell $(CC) \
	-print-file-name=lib$(1).a))),-l:lib$(1).a,-l$(1))
LDLIBS := $(call link_lib,jansson) -pthread

# io_uring for disk I/O where liburing is installed (the thread pool otherwise).
HAVE_LIBURING := $(shell pkg-config --exists liburing 2>/dev/null && echo 1)
ifeq ($(HAVE_LIBURING),1)
CFLAGS_COMMON += -DHAVE_LIBURING
LDLIBS += $(call link_lib,uring)
endif

# seccomp filters for the monitor's threads (src/core/sandbox.c), compiled
# with libseccomp at build time: sandbox.c built with SANDBOX_GEN prints them
# as $(BUILD)/VARIANT/gen/sandbox_bpf.h (the sanitizer build's filters allow
# more), and the monitor links no libseccomp (see the rules below). The fuzz
# targets build without it (the sandbox is then a no-op).
HAVE_LIBSECCOMP := $(shell pkg-config --exists libseccomp 2>/dev/null && echo 1)
ifeq ($(HAVE_LIBSECCOMP),1)
CFLAGS_COMMON += -DHAVE_LIBSECCOMP
endif

# NAT switches (src/switch/nat.c) use libslirp (its .pc needs glib's, so
# libglib2.0-dev too, though nestvm does not use glib), loaded with dlopen()
# by the switch's process alone: not linked, so a VM monitor's start does
# not map it and glib. The lab copies it into its initramfs (tests/lab/lab.sh).
# The fuzz targets build without it (nat.c's stub).
HAVE_LIBSLIRP := $(shell pkg-config --exists slirp 2>/dev/null && echo 1)
ifeq ($(HAVE_LIBSLIRP),1)
CFLAGS_COMMON += -DHAVE_LIBSLIRP
endif

# The release monitor is linked statically (`make STATIC=` links it with the
# shared libc): a start then maps no loader and no libc.so, only the part of
# glibc it links, and that part can be laid out with nestvm's own code. Its
# peak RSS for the probe's test=exit was 2.62 MiB linked with the shared
# libc (1.3 MiB of libc.so's code mapped: the kernel maps the 64 KiB around
# each page touched), 1.6-1.9 MiB static, and 1.16 MiB static with the code a
# start runs laid out first (below). libslirp and libcrypto are still loaded
# with dlopen(), which a static glibc supports with the shared libraries of
# the same glibc: nestvm is relinked when libc.a changes (libc6-dev and
# libc6 are upgraded together), so a rebuild after a glibc upgrade is enough.
STATIC ?= 1
LIBC_A := $(wildcard $(shell $(CC) -print-file-name=libc.a))
REL_LDFLAGS :=
REL_LINK_DEPS :=
ifeq ($(STATIC)$(if $(LIBC_A),1),11)
REL_LDFLAGS += -static
REL_LINK_DEPS += $(LIBC_A)
# The functions a start runs (src/startup.order, made by
# bench/startup-order.sh from a single-stepped start) are put first, next to
# each other, which takes a section per function and lld's ordering (GNU ld
# 2.40 has none): 66 pages of code touched, 0.5 MiB mapped instead of 1.2.
# Without lld the static monitor links as it is, in the default order.
ifneq ($(shell command -v ld.lld 2>/dev/null),)
STARTUP_ORDER := src/startup.order
REL_ORDER_CFLAGS := -ffunction-sections
REL_LDFLAGS += -fuse-ld=lld -Wl,--symbol-ordering-file=$(STARTUP_ORDER) -Wl,--no-warn-symbol-ordering
REL_LINK_DEPS += $(STARTUP_ORDER)
endif
endif

# `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

REL_CFLAGS := $(CFLAGS_COMMON) -O2 -g $(REL_ORDER_CFLAGS)
ASAN_CFLAGS := $(CFLAGS_COMMON) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

SRCS := $(shell find src -name '*.c' | sort)
MAIN_SRC := src/cli/main.c
LIB_SRCS := $(filter-out $(MAIN_SRC),$(SRCS))

REL_OBJS := $(SRCS:%.c=$(BUILD)/release/%.o)
ASAN_OBJS := $(SRCS:%.c=$(BUILD)/asan/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/asan/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/asan/tests/%)

.PHONY: all release asan guests test-tools test test-now demo-now fuzz-build unit-test integration-test lab-test demo bench bench-blk bench-snapshot \
	lab-soak lab-soak-labs lab-snapshot lab-exec lab-net lab-migrate stress-pause \
	fuzz format lint clean deps check-fresh
all: release guests

release: $(BUILD)/release/nestvm
asan: $(BUILD)/asan/nestvm

# Each variant's flags are kept in a stamp that changes only when they do (a
# library installed since, `make STATIC=`): its objects and links follow it.
.PHONY: FORCE
$(BUILD)/%/.flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(FLAGS_$*)' | cmp -s - $@ || echo '$(FLAGS_$*)' >$@
FLAGS_release = $(REL_CFLAGS) $(REL_LDFLAGS) $(LDLIBS)
FLAGS_asan = $(ASAN_CFLAGS) $(LDLIBS)
$(REL_OBJS) $(BUILD)/release/nestvm: $(BUILD)/release/.flags
$(ASAN_OBJS) $(BUILD)/asan/nestvm: $(BUILD)/asan/.flags

$(BUILD)/release/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(REL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	$(Q)$(CC) $(ASAN_CFLAGS) -c -o $@ $<

ifeq ($(HAVE_LIBSECCOMP),1)
# sandbox_bpf.h per variant: the generator is sandbox.c and log.c built with
# that variant's flags (no dependency files of its own), run once.
SANDBOX_GEN_SRCS := src/core/sandbox.c src/core/log.c
$(BUILD)/release/gen/sandbox_bpf.h: $(SANDBOX_GEN_SRCS) src/core/sandbox.h src/core/log.h
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)$(CC) $(filter-out -MMD -MP,$(REL_CFLAGS)) -DSANDBOX_GEN -o $(dir $@)sandbox-gen \
		$(SANDBOX_GEN_SRCS) -lseccomp
	$(Q)$(dir $@)sandbox-gen >$@.tmp && mv $@.tmp $@
$(BUILD)/asan/gen/sandbox_bpf.h: $(SANDBOX_GEN_SRCS) src/core/sandbox.h src/core/log.h
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)$(CC) $(filter-out -MMD -MP,$(ASAN_CFLAGS)) -DSANDBOX_GEN -o $(dir $@)sandbox-gen \
		$(SANDBOX_GEN_SRCS) -lseccomp
	$(Q)ASAN_OPTIONS=detect_leaks=0 $(dir $@)sandbox-gen >$@.tmp && mv $@.tmp $@
$(BUILD)/release/src/core/sandbox.o: $(BUILD)/release/gen/sandbox_bpf.h
$(BUILD)/release/src/core/sandbox.o: private REL_CFLAGS += -DSANDBOX_BPF_PREBUILT -I$(BUILD)/release/gen
$(BUILD)/asan/src/core/sandbox.o: $(BUILD)/asan/gen/sandbox_bpf.h
$(BUILD)/asan/src/core/sandbox.o: private ASAN_CFLAGS += -DSANDBOX_BPF_PREBUILT -I$(BUILD)/asan/gen
endif

$(BUILD)/release/nestvm: $(REL_OBJS) $(REL_LINK_DEPS)
	@echo "  LD      $@"
	$(Q)$(CC) $(REL_CFLAGS) $(REL_LDFLAGS) -o $@ $(REL_OBJS) $(LDLIBS)

$(BUILD)/asan/nestvm: $(ASAN_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $(ASAN_OBJS) $(LDLIBS)


$(BUILD)/asan/tests/%: tests/unit/%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $< $(ASAN_LIB_OBJS) -lcmocka $(LDLIBS)

# Helpers the integration tests run (tests/integration/*.c): plain host programs.
TEST_TOOLS := $(BUILD)/tests/mig_fault $(BUILD)/tests/switch_peer $(BUILD)/tests/fake_switch
$(BUILD)/tests/%: tests/integration/%.c
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $<"
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<
# The lab guard's page-table walker (tests/lab/tools/ptwalk.c), tried on the host.
TEST_TOOLS += $(BUILD)/tests/ptwalk
$(BUILD)/tests/ptwalk: tests/lab/tools/ptwalk.c src/arch/x86/layout.h
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $<"
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -g -Isrc -o $@ $<
test-tools: $(TEST_TOOLS)

# Guest images (probe guest) add themselves here.
GUEST_IMAGES :=
-include guest/*/guest.mk
guests: $(GUEST_IMAGES)

unit-test: $(UNIT_BINS)

# `make test` and `make demo` work on a fresh Debian 12: they first install
# the Debian packages they lack (scripts/install-deps.sh: apt-get, only what
# is missing), then run make again, whose new parse sees the new libraries,
# building on every CPU (the build is a minute of make test's 12 on 2 cores).
test demo:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory -j$$(nproc) $@-now

test-now: $(BUILD)/asan/nestvm $(BUILD)/release/nestvm $(UNIT_BINS) $(GUEST_IMAGES) $(TEST_TOOLS)
	tests/run-all.sh

demo-now: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/demo.sh

# Long lab soaks, outside `make test` (tests/lab/README.md, "Soaks"):
# lab-soak: LAB_SOAK_RUNS 2-vCPU L2 runs under a nested Linux L1 in one lab,
# within LAB_SOAK_SECONDS (nested-soak; LAB_SOAK_SPEC adds words: .trace, .nohold);
# lab-soak-labs: LAB_SOAK_LABS lab boots, each running LAB_SOAK_SCENARIOS.
LAB_SOAK_RUNS ?= 500
LAB_SOAK_SECONDS ?= 3600
LAB_SOAK_SPEC ?=
LAB_SOAK_LABS ?= 10
LAB_SOAK_SCENARIOS ?= nested-probe manager-nested nested nested:linux
lab-soak: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/lab.sh --name soak --timeout $$(($(LAB_SOAK_SECONDS) + 300)) \
		nested-soak:$(LAB_SOAK_RUNS).s$(LAB_SOAK_SECONDS)$(LAB_SOAK_SPEC)
lab-soak-labs: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/soak.sh -n $(LAB_SOAK_LABS) $(LAB_SOAK_SCENARIOS)

# The lab's save/restore tests of guest hypervisors, too long for make test
# (tests/lab/README.md, "Snapshots"): snapshot-nested and snapshot-linux.
lab-snapshot: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/lab.sh --name snapshot --timeout 1500 snapshot-nested snapshot-linux

# The long cases of nestvm exec/cp, outside `make test`: 1 GiB each way into a
# Linux L1, and exec, cp and a pty into an L2 Linux through the L1's agent
# (tests/lab/scenarios/exec.sh heavy).
lab-net: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/lab.sh --name net --timeout 1200 net net:nested

lab-exec: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/lab.sh --name exec --timeout 2800 exec:ssh exec:heavy

# The lab's live migrations of guest hypervisors (tests/lab/README.md,
# "Migration"): migrate-nested (also in make test) and migrate-linux.
lab-migrate: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	tests/lab/lab.sh --name migrate --timeout 1500 migrate-nested migrate-linux

bench: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	bench/boot.sh

# Live migration against QEMU's, over loopback TCP (bench/migrate.sh; RUNS=3, SIZES="256 1024"
# MiB, CASES="idle memgen", DOWNTIME=50 ms).
.PHONY: bench-migrate
bench-migrate: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	BUILD=$(BUILD) bench/migrate.sh

# The issue's pause stress: 100,000 pause/resume cycles on a busy guest, latency reported.
stress-pause: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	PAUSE_STRESS_SECONDS=5 PAUSE_STRESS_CYCLES=100000 NESTVM=$(BUILD)/release/nestvm \
		tests/integration/pause_stress.sh

# virtio-blk through nestvm's device model vs. the image file directly (bench/virtio_blk.c).
REL_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/release/%.o)
$(BUILD)/release/bench/virtio_blk: bench/virtio_blk.c $(REL_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(REL_CFLAGS) -o $@ $< $(REL_LIB_OBJS) $(LDLIBS)
bench-blk: $(BUILD)/release/bench/virtio_blk
	$(BUILD)/release/bench/virtio_blk $${BENCH_SECONDS:+-s $$BENCH_SECONDS} \
		$${BENCH_IMAGE:-/var/tmp/nestvm-bench-blk.img}

# virtio-net against QEMU: VM to VM (private switch vs. -netdev stream) and VM to host
# (NAT switch vs. -netdev user), throughput and packet rate (bench/net.sh; BENCH_ROUNDS,
# BENCH_SECONDS, BENCH_SIZES).
.PHONY: bench-net
$(BUILD)/release/bench/udp_sink: bench/udp_sink.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(REL_CFLAGS) -o $@ $<
bench-net: $(BUILD)/release/nestvm $(GUEST_IMAGES) $(BUILD)/release/bench/udp_sink
	bench/net.sh

# Save and restore against QEMU's migrate to a file (bench/snapshot.sh; RUNS=5, SIZES="256 2048" MiB).
bench-snapshot: $(BUILD)/release/nestvm $(GUEST_IMAGES)
	BUILD=$(BUILD) bench/snapshot.sh

# libFuzzer targets (clang): build/fuzz/fuzz_*, linked against one sanitizer+fuzzer build of
# the library in build/fuzz/obj/. `make fuzz FUZZ_SECONDS=600` runs each for that long;
# FUZZ_SECONDS_<target>=N (make variable or environment) overrides it for one target, e.g.
# `make fuzz FUZZ_SECONDS=5 FUZZ_SECONDS_fuzz_vsock=20`. A target's seeds are read from
# tests/fuzz/seeds/<target>/ (fuzz_boot: the guest images); its corpus is build/corpus/<target>.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined
FUZZ_LIBS := -ljansson -pthread
ifeq ($(HAVE_LIBURING),1)
FUZZ_CFLAGS += -DHAVE_LIBURING
FUZZ_LIBS += -luring
endif
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJS) $(FUZZ_LIBS)
fuzz-build: $(FUZZ_BINS)
fuzz: $(FUZZ_BINS) $(GUEST_IMAGES)
	@for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); seeds=tests/fuzz/seeds/$$n; \
		[ $$n = fuzz_boot ] && seeds=$(BUILD)/guest; \
		[ -d "$$seeds" ] || seeds=; \
		secs=$$(eval "echo \$${FUZZ_SECONDS_$$n:-$(FUZZ_SECONDS)}"); \
		mkdir -p $(BUILD)/corpus/$$n; \
		$$f -max_total_time=$$secs -max_len=262144 $(BUILD)/corpus/$$n $$seeds || exit 1; \
	done

format:
	clang-format -i $(SRCS) $(UNIT_SRCS) $(wildcard src/*/*.h src/*/*/*.h src/*/*/*/*.h)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--suppress=missingIncludeSystem -Isrc $(SRCS)

deps:
	scripts/install-deps.sh

# The README's two commands on a fresh Debian 12 root (debootstrap; as root;
# not part of `make test`). FRESH_ARGS: e.g. "--only test", "--keep".
check-fresh:
	scripts/check-fresh-root.sh $(FRESH_ARGS)

clean:
	rm -rf $(BUILD)

# Only where -MMD writes them (build/ may also hold `make check-fresh`'s Debian root).
-include $(shell find $(BUILD)/release $(BUILD)/asan $(BUILD)/guest -name '*.d' -type f 2>/dev/null)
