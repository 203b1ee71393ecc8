# Test programs for the lab host (tests/lab/scenarios/): static binaries in
# build/guest/, which the lab copies to /lab/guest/. Included by the top
# Makefile.

# test_vcpu_state without cmocka: vCPU/VM state save and restore on the
# lab's KVM, which has nested SVM state (tests/lab/scenarios/vcpu-state.sh).
TEST_VCPU_STATE_LAB := $(BUILD)/guest/test-vcpu-state
TEST_VCPU_STATE_SRCS := tests/unit/test_vcpu_state.c src/snapshot/format.c \
	src/arch/x86/vcpu_state.c src/kvm/kvm.c src/core/fsutil.c

$(TEST_VCPU_STATE_LAB): $(TEST_VCPU_STATE_SRCS) $(wildcard src/snapshot/*.h src/arch/x86/*.h src/kvm/*.h src/core/fsutil.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -DTEST_STANDALONE -Isrc -O2 -static -o $@ \
		$(TEST_VCPU_STATE_SRCS)

GUEST_IMAGES += $(TEST_VCPU_STATE_LAB)
