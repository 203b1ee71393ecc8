# Programs that run inside the Linux guests of tests (and on the lab host):
# static binaries in build/guest/, which the lab copies to /lab/guest/.
# Included by the top Makefile.

LINUX_TOOLS_DIR := guest/linux
NESTVM_VSOCK := $(BUILD)/guest/nestvm-vsock

$(NESTVM_VSOCK): $(LINUX_TOOLS_DIR)/nestvm_vsock.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -static -o $@ $<

GUEST_IMAGES += $(NESTVM_VSOCK)
