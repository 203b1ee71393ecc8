# The probe guest (guest/probe/README.md): a freestanding x86-64 test kernel,
# built as a PVH ELF and as a bzImage. Included by the top Makefile.

PROBE_DIR := guest/probe
PROBE_OUT := $(BUILD)/guest/probe
PROBE_ELF := $(BUILD)/guest/probe.elf
PROBE_BZIMAGE := $(BUILD)/guest/probe.bzImage

PROBE_CFLAGS := -std=gnu11 $(WARN) -O2 -g -Isrc -I$(PROBE_DIR) -MMD -MP \
	-ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie -mno-red-zone \
	-mgeneral-regs-only -mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -fcf-protection=none -fno-tree-loop-distribute-patterns \
	-fno-omit-frame-pointer --param=min-pagesize=0
PROBE_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(PROBE_DIR)/probe.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

PROBE_SRCS := $(filter-out $(PROBE_DIR)/mkbzimage.c $(PROBE_DIR)/memgen_expect.c,\
	$(wildcard $(PROBE_DIR)/*.c)) \
	$(PROBE_DIR)/head.S $(PROBE_DIR)/hv.S
PROBE_OBJS := $(patsubst $(PROBE_DIR)/%,$(PROBE_OUT)/%.o,$(PROBE_SRCS))

$(PROBE_OUT)/%.c.o: $(PROBE_DIR)/%.c
	@mkdir -p $(dir $@)
	@echo "  CC probe $<"
	$(Q)$(CC) $(PROBE_CFLAGS) -c -o $@ $<

$(PROBE_OUT)/%.S.o: $(PROBE_DIR)/%.S
	@mkdir -p $(dir $@)
	@echo "  AS probe $<"
	$(Q)$(CC) $(PROBE_CFLAGS) -c -o $@ $<

$(PROBE_ELF): $(PROBE_OBJS) $(PROBE_DIR)/probe.ld
	@echo "  LD      $@"
	$(Q)$(CC) $(PROBE_CFLAGS) $(PROBE_LDFLAGS) -o $@ $(PROBE_OBJS)

$(PROBE_OUT)/setup.bin: $(PROBE_OUT)/setup.S.o
	@echo "  LD      $@"
	$(Q)$(LD) -m elf_x86_64 -Ttext=0x80 --oformat=binary -e setup_start -o $@ $<

$(PROBE_OUT)/mkbzimage: $(PROBE_DIR)/mkbzimage.c $(PROBE_DIR)/arch.h
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $<"
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

$(PROBE_BZIMAGE): $(PROBE_ELF) $(PROBE_OUT)/setup.bin $(PROBE_OUT)/mkbzimage
	@echo "  BZIMAGE $@"
	$(Q)$(PROBE_OUT)/mkbzimage $(PROBE_ELF) $(PROBE_OUT)/setup.bin $@

# The host's side of test=memgen: the result line a run must print.
PROBE_MEMGEN_EXPECT := $(BUILD)/guest/memgen-expect
$(PROBE_MEMGEN_EXPECT): $(PROBE_DIR)/memgen_expect.c $(PROBE_DIR)/memgen_chain.h $(PROBE_DIR)/arch.h
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $<"
	$(Q)$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

GUEST_IMAGES += $(PROBE_ELF) $(PROBE_BZIMAGE) $(PROBE_MEMGEN_EXPECT)
