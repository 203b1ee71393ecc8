# nestvm-agent, the guest agent of `nestvm exec` and `nestvm cp` (docs/agent.md):
# a static Linux program for inside guests (build/guest/nestvm-agent, which the
# lab puts in its L1 initramfs), built from guest/agent/ and the protocol code
# it shares with nestvm (src/agent/proto.c, conn.c; src/core/fsutil.c for
# --unix). build/asan/nestvm-agent is the same with ASan+UBSan, for the
# host-side tests (tests/integration/exec.sh runs it with --unix).
# Included by the top Makefile.

AGENT_DIR := guest/agent
NESTVM_AGENT := $(BUILD)/guest/nestvm-agent
NESTVM_AGENT_ASAN := $(BUILD)/asan/nestvm-agent
AGENT_SRCS := $(wildcard $(AGENT_DIR)/*.c) src/agent/proto.c src/agent/conn.c src/core/fsutil.c
AGENT_DEPS := $(AGENT_SRCS) $(wildcard $(AGENT_DIR)/*.h) src/agent/proto.h src/agent/conn.h \
	src/core/fsutil.h

$(NESTVM_AGENT): $(AGENT_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -Isrc -O2 -static -o $@ $(AGENT_SRCS)

$(NESTVM_AGENT_ASAN): $(AGENT_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC asan $@"
	$(Q)$(CC) $(ASAN_CFLAGS) -o $@ $(AGENT_SRCS)

GUEST_IMAGES += $(NESTVM_AGENT) $(NESTVM_AGENT_ASAN)
