/* SPDX-License-Identifier: MIT */
/*
 * Saving and restoring what KVM holds for x86 vCPUs and the VM, and its
 * snapshot sections. The order of the ioctls, and why, is in vcpu_state.h
 * and docs/snapshot.md.
 */
#include "arch/x86/vcpu_state.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NESTED_HDR_SIZE ((uint32_t)sizeof(struct kvm_nested_state))
#define XSAVE_LEGACY_SIZE ((uint32_t)sizeof(struct kvm_xsave))

#define PER_VCPU SNAP_TYPE_PER_VCPU
#define REQUIRED SNAP_TYPE_REQUIRED
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
/* A section type whose payload is one struct of a fixed size. */
#define SEC_FIXED(t, n, f, inst, st)                                                               \
	{                                                                                          \
		.type = (t), .name = (n), .flags = (f), .max_instances = (inst), .min_version = 1, \
		.max_version = 1, .min_len = sizeof(st), .max_len = sizeof(st)                     \
	}

const struct snap_section_type vcpu_state_section_types[] = {
    SEC_FIXED(VCPU_SEC_MP_STATE, "mp_state", PER_VCPU | REQUIRED, 0, struct kvm_mp_state),
    SEC_FIXED(VCPU_SEC_REGS, "regs", PER_VCPU | REQUIRED, 0, struct kvm_regs),
    {.type = VCPU_SEC_SREGS,
     .name = "sregs",
     .flags = PER_VCPU | REQUIRED,
     .min_version = 1,
     .max_version = 2, /* v1 kvm_sregs, v2 kvm_sregs2 */
     .min_len = MIN(sizeof(struct kvm_sregs), sizeof(struct kvm_sregs2)),
     .max_len = MAX(sizeof(struct kvm_sregs), sizeof(struct kvm_sregs2))},
    {.type = VCPU_SEC_FPU,
     .name = "fpu",
     .flags = PER_VCPU | REQUIRED,
     .min_version = 1,
     .max_version = 2, /* v1 kvm_fpu, v2 an XSAVE area */
     .min_len = sizeof(struct kvm_fpu),
     .max_len = VCPU_STATE_MAX_XSAVE},
    SEC_FIXED(VCPU_SEC_XCRS, "xcrs", PER_VCPU, 0, struct kvm_xcrs),
    SEC_FIXED(VCPU_SEC_LAPIC, "lapic", PER_VCPU, 0, struct kvm_lapic_state),
    SEC_FIXED(VCPU_SEC_EVENTS, "events", PER_VCPU | REQUIRED, 0, struct kvm_vcpu_events),
    SEC_FIXED(VCPU_SEC_DEBUGREGS, "debugregs", PER_VCPU, 0, struct kvm_debugregs),
    {.type = VCPU_SEC_MSRS,
     .name = "msrs",
     .flags = PER_VCPU | REQUIRED,
     .min_version = 1,
     .max_version = 1,
     .min_len = 0,
     .max_len = VCPU_STATE_MAX_MSRS * sizeof(struct kvm_msr_entry)},
    {.type = VCPU_SEC_CPUID,
     .name = "cpuid",
     .flags = PER_VCPU | REQUIRED,
     .min_version = 1,
     .max_version = 1,
     .min_len = sizeof(struct kvm_cpuid_entry2),
     .max_len = VCPU_STATE_MAX_CPUID * sizeof(struct kvm_cpuid_entry2)},
    {.type = VCPU_SEC_NESTED,
     .name = "nested",
     .flags = PER_VCPU,
     .min_version = 1,
     .max_version = 1,
     .min_len = sizeof(struct kvm_nested_state),
     .max_len = VCPU_STATE_MAX_NESTED},
    SEC_FIXED(VM_SEC_IRQCHIP, "irqchip", 0, VM_STATE_NR_IRQCHIPS, struct kvm_irqchip),
    SEC_FIXED(VM_SEC_PIT, "pit", 0, 1, struct kvm_pit_state2),
    SEC_FIXED(VM_SEC_CLOCK, "clock", REQUIRED, 1, struct kvm_clock_data),
};
const unsigned int vcpu_state_nr_section_types = ARRAY_LEN(vcpu_state_section_types);
const struct snap_schema vcpu_state_schema = {vcpu_state_section_types,
                                              ARRAY_LEN(vcpu_state_section_types)};

/* ---- capabilities ---- */

int vcpu_state_caps_probe(int kvm_fd, int vm_fd, struct vcpu_state_caps *caps)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *list;
	bool have_hsave = false;
	int r, xsave2;

	*caps = (struct vcpu_state_caps){0};
	caps->sregs2 = kvm_check_cap(vm_fd, KVM_CAP_SREGS2) > 0;
	caps->xsave = kvm_check_cap(vm_fd, KVM_CAP_XSAVE) > 0;
	xsave2 = kvm_check_cap(vm_fd, KVM_CAP_XSAVE2);
	if (caps->xsave && xsave2 >= (int)XSAVE_LEGACY_SIZE && xsave2 <= (int)VCPU_STATE_MAX_XSAVE)
		caps->xsave_size = (uint32_t)xsave2;
	caps->xcrs = kvm_check_cap(vm_fd, KVM_CAP_XCRS) > 0;
	caps->debugregs = kvm_check_cap(vm_fd, KVM_CAP_DEBUGREGS) > 0;
	r = kvm_check_cap(vm_fd, KVM_CAP_NESTED_STATE);
	if (r >= (int)NESTED_HDR_SIZE && r <= (int)VCPU_STATE_MAX_NESTED)
		caps->nested_state_size = (uint32_t)r;

	/* §4.3: E2BIG with nmsrs set to the real count. */
	r = kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (r < 0 && r != -E2BIG)
		return r;
	if (probe.nmsrs > VCPU_STATE_MAX_MSRS - 1)
		return -E2BIG;
	list = calloc(1, sizeof(*list) + (probe.nmsrs + 1) * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	r = kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list);
	if (r < 0) {
		free(list);
		return r;
	}
	/* HSAVE_PA holds where an SVM guest hypervisor keeps its host state. */
	for (unsigned int i = 0; i < list->nmsrs; i++)
		have_hsave |= list->indices[i] == MSR_VM_HSAVE_PA;
	if (!have_hsave)
		list->indices[list->nmsrs++] = MSR_VM_HSAVE_PA;
	caps->nr_msr_indices = list->nmsrs;
	caps->msr_indices = malloc(list->nmsrs * sizeof(uint32_t));
	if (!caps->msr_indices) {
		free(list);
		return -ENOMEM;
	}
	memcpy(caps->msr_indices, list->indices, list->nmsrs * sizeof(uint32_t));
	free(list);
	return 0;
}

void vcpu_state_caps_release(struct vcpu_state_caps *caps)
{
	free(caps->msr_indices);
	caps->msr_indices = NULL;
	caps->nr_msr_indices = 0;
}

/* ---- save ---- */

int vcpu_state_complete_io(int vcpu_fd, struct kvm_run *run)
{
	uint8_t old = run->immediate_exit;
	int r;

	run->immediate_exit = 1;
	r = ioctl(vcpu_fd, KVM_RUN, 0);
	r = r < 0 ? -errno : 0;
	run->immediate_exit = old;
	if (r == -EINTR)
		return 0; /* completed (or nothing pending); no instruction ran */
	return r == 0 ? -EAGAIN : r;
}

/*
 * The MSRs KVM lists, less those this vCPU does not have (KVM_GET_MSRS
 * stops at the first one it cannot read and returns how many it read).
 */
static int vcpu_state_save_msrs(int fd, const struct vcpu_state_caps *caps, struct kvm_msrs **out)
{
	unsigned int n = caps->nr_msr_indices;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	int r;

	if (!m)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		m->entries[i].index = caps->msr_indices[i];
	m->nmsrs = n;
	for (;;) {
		r = kvm_ioctl(fd, KVM_GET_MSRS, m);
		if (r < 0 || (uint32_t)r >= m->nmsrs)
			break;
		/* Entry r is not readable here: drop it and read the list again. */
		memmove(&m->entries[r], &m->entries[r + 1],
		        (m->nmsrs - (uint32_t)r - 1) * sizeof(m->entries[0]));
		m->nmsrs--;
	}
	if (r < 0) {
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

static int vcpu_state_save_xsave(int fd, const struct vcpu_state_caps *caps, struct vcpu_state *st)
{
	if (!caps->xsave) {
		st->xsave_size = 0;
		return kvm_ioctl(fd, KVM_GET_FPU, &st->fpu);
	}
	st->xsave_size = caps->xsave_size ? caps->xsave_size : XSAVE_LEGACY_SIZE;
	st->xsave = calloc(1, st->xsave_size);
	if (!st->xsave)
		return -ENOMEM;
	return kvm_ioctl(fd, caps->xsave_size ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, st->xsave);
}

static int vcpu_state_save_nested(int fd, const struct vcpu_state_caps *caps, struct vcpu_state *st)
{
	uint32_t cap = caps->nested_state_size;
	int r;

	if (!cap)
		return 0;
	/* The full KVM_CAP_NESTED_STATE size, never less (Linux 6.1 SVM overrun). */
	st->nested = calloc(1, cap);
	if (!st->nested)
		return -ENOMEM;
	st->nested->size = cap;
	r = kvm_ioctl(fd, KVM_GET_NESTED_STATE, st->nested);
	if (r < 0)
		return r;
	if (st->nested->size < NESTED_HDR_SIZE || st->nested->size > cap)
		return -EPROTO;
	return 0;
}

int vcpu_state_save(int vcpu_fd, struct kvm_run *run, const struct vcpu_state_caps *caps,
                    struct vcpu_state *out)
{
	struct vcpu_state st = {0};
	int r = 0;

	if (run)
		r = vcpu_state_complete_io(vcpu_fd, run);
	if (r == 0)
		r = kvm_ioctl(vcpu_fd, KVM_GET_MP_STATE, &st.mp_state);
	if (r == 0)
		r = kvm_ioctl(vcpu_fd, KVM_GET_REGS, &st.regs);
	if (r == 0) {
		st.has_sregs2 = caps->sregs2;
		r = kvm_ioctl(vcpu_fd, caps->sregs2 ? KVM_GET_SREGS2 : KVM_GET_SREGS,
		              caps->sregs2 ? (void *)&st.sregs2 : (void *)&st.sregs);
	}
	if (r == 0)
		r = vcpu_state_save_xsave(vcpu_fd, caps, &st);
	if (r == 0 && caps->xcrs) {
		st.has_xcrs = true;
		r = kvm_ioctl(vcpu_fd, KVM_GET_XCRS, &st.xcrs);
	}
	if (r == 0) {
		/* No in-kernel LAPIC (no KVM_CREATE_IRQCHIP): nothing to save. */
		r = kvm_ioctl(vcpu_fd, KVM_GET_LAPIC, &st.lapic);
		st.has_lapic = r == 0;
		if (r == -ENXIO)
			r = 0;
	}
	if (r == 0 && caps->debugregs) {
		st.has_debugregs = true;
		r = kvm_ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &st.debugregs);
	}
	if (r == 0)
		r = vcpu_state_save_msrs(vcpu_fd, caps, &st.msrs);
	if (r == 0) {
		st.cpuid = kvm_cpuid_alloc(VCPU_STATE_MAX_CPUID);
		r = st.cpuid ? kvm_ioctl(vcpu_fd, KVM_GET_CPUID2, st.cpuid) : -ENOMEM;
	}
	if (r == 0)
		r = vcpu_state_save_nested(vcpu_fd, caps, &st);
	if (r == 0)
		r = kvm_ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &st.events);
	if (r < 0) {
		vcpu_state_release(&st);
		return r;
	}
	*out = st;
	return 0;
}

/* ---- restore ---- */

int vcpu_state_check(const struct vcpu_state *st, const struct vcpu_state_caps *caps, char *why,
                     size_t len)
{
	if (st->has_sregs2 && !caps->sregs2)
		snprintf(why, len, "the state has SREGS2 and this KVM lacks KVM_CAP_SREGS2");
	else if (st->xsave_size && !caps->xsave)
		snprintf(why, len, "the state has XSAVE and this KVM lacks KVM_CAP_XSAVE");
	else if (st->xsave_size > (caps->xsave_size ? caps->xsave_size : XSAVE_LEGACY_SIZE))
		snprintf(why, len, "the XSAVE state has %u bytes, this KVM takes %u",
		         st->xsave_size, caps->xsave_size ? caps->xsave_size : XSAVE_LEGACY_SIZE);
	else if (st->has_xcrs && !caps->xcrs)
		snprintf(why, len, "the state has XCRs and this KVM lacks KVM_CAP_XCRS");
	else if (st->has_debugregs && !caps->debugregs)
		snprintf(why, len,
		         "the state has debug registers and this KVM lacks "
		         "KVM_CAP_DEBUGREGS");
	else if (st->nested && st->nested->size > caps->nested_state_size)
		snprintf(why, len,
		         "the state has %u bytes of nested state, this KVM takes %u "
		         "(KVM_CAP_NESTED_STATE)",
		         st->nested->size, caps->nested_state_size);
	else
		return 0;
	return -EOPNOTSUPP;
}

/* The MSRs in the order KVM needs them: see vcpu_state.h. */
static int msr_restore_rank(uint32_t index)
{
	switch (index) {
	case MSR_IA32_TSC:
		return 0;
	case MSR_KVM_ASYNC_PF_INT:
		return 1;
	case MSR_IA32_TSC_DEADLINE:
		return 3;
	default:
		return 2;
	}
}

/*
 * KVM_SET_MSRS of the saved MSRs: only IA32_FEATURE_CONTROL with
 * @feature_control, all the others by rank otherwise.
 */
static int vcpu_state_set_msrs(int fd, const struct kvm_msrs *saved, bool feature_control,
                               char *what, size_t len)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + saved->nmsrs * sizeof(m->entries[0]));
	int r = 0;

	if (!m)
		return -ENOMEM;
	for (uint32_t i = 0; feature_control && i < saved->nmsrs; i++)
		if (saved->entries[i].index == MSR_IA32_FEATURE_CONTROL)
			m->entries[m->nmsrs++] = saved->entries[i];
	/* A stable selection by rank keeps KVM's own order within a rank. */
	for (int rank = 0; !feature_control && rank <= 3; rank++)
		for (uint32_t i = 0; i < saved->nmsrs; i++)
			if (saved->entries[i].index != MSR_IA32_FEATURE_CONTROL &&
			    msr_restore_rank(saved->entries[i].index) == rank)
				m->entries[m->nmsrs++] = saved->entries[i];
	if (m->nmsrs) {
		r = kvm_ioctl(fd, KVM_SET_MSRS, m);
		if (r >= 0 && (uint32_t)r < m->nmsrs) {
			snprintf(what, len, "KVM_SET_MSRS: KVM refused MSR 0x%x (value 0x%llx)",
			         m->entries[r].index, (unsigned long long)m->entries[r].data);
			r = -EINVAL;
		} else if (r >= 0) {
			r = 0;
		}
	}
	free(m);
	return r;
}

/* Run one restore step; on failure name it in @what. */
#define STEP(name, expr)                                                                           \
	do {                                                                                       \
		r = (expr);                                                                        \
		if (r < 0) {                                                                       \
			if (!what[0])                                                              \
				snprintf(what, len, "%s: %s", name, strerror(-r));                 \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

int vcpu_state_restore(int vcpu_fd, const struct vcpu_state_caps *caps, const struct vcpu_state *st,
                       char *what_buf, size_t what_len)
{
	char scratch[160] = "";
	char *what = what_buf && what_len ? what_buf : scratch;
	size_t len = what_buf && what_len ? what_len : sizeof(scratch);
	struct kvm_nested_state *nested = NULL;
	struct kvm_xsave *xsave = NULL;
	struct kvm_vcpu_events events = st->events;
	struct kvm_mp_state mp = st->mp_state;
	int r;

	what[0] = '\0';
	r = vcpu_state_check(st, caps, what, len);
	if (r < 0)
		return r;
	/* Copies: the SET ioctls take non-const pointers. */
	if (st->xsave_size) {
		uint32_t size = caps->xsave_size ? caps->xsave_size : XSAVE_LEGACY_SIZE;

		xsave = calloc(1, size);
		if (!xsave)
			return -ENOMEM;
		memcpy(xsave, st->xsave, st->xsave_size);
	}
	if (st->nested) {
		nested = malloc(st->nested->size);
		if (!nested) {
			free(xsave);
			return -ENOMEM;
		}
		memcpy(nested, st->nested, st->nested->size);
	}

	STEP("KVM_SET_CPUID2", kvm_ioctl(vcpu_fd, KVM_SET_CPUID2, st->cpuid));
	STEP("KVM_SET_MSRS (IA32_FEATURE_CONTROL)",
	     vcpu_state_set_msrs(vcpu_fd, st->msrs, true, what, len));
	if (st->has_sregs2)
		STEP("KVM_SET_SREGS2", kvm_ioctl(vcpu_fd, KVM_SET_SREGS2, (void *)&st->sregs2));
	else
		STEP("KVM_SET_SREGS", kvm_ioctl(vcpu_fd, KVM_SET_SREGS, (void *)&st->sregs));
	if (nested)
		STEP("KVM_SET_NESTED_STATE", kvm_ioctl(vcpu_fd, KVM_SET_NESTED_STATE, nested));
	STEP("KVM_SET_REGS", kvm_ioctl(vcpu_fd, KVM_SET_REGS, (void *)&st->regs));
	if (xsave)
		STEP("KVM_SET_XSAVE", kvm_ioctl(vcpu_fd, KVM_SET_XSAVE, xsave));
	else
		STEP("KVM_SET_FPU", kvm_ioctl(vcpu_fd, KVM_SET_FPU, (void *)&st->fpu));
	if (st->has_xcrs)
		STEP("KVM_SET_XCRS", kvm_ioctl(vcpu_fd, KVM_SET_XCRS, (void *)&st->xcrs));
	if (st->has_lapic)
		STEP("KVM_SET_LAPIC", kvm_ioctl(vcpu_fd, KVM_SET_LAPIC, (void *)&st->lapic));
	STEP("KVM_SET_MSRS", vcpu_state_set_msrs(vcpu_fd, st->msrs, false, what, len));
	/* §4.32: only fields whose VALID bit is set are written. */
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	STEP("KVM_SET_VCPU_EVENTS", kvm_ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events));
	STEP("KVM_SET_MP_STATE", kvm_ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp));
	if (st->has_debugregs) {
		struct kvm_debugregs dr = st->debugregs;

		dr.flags = 0; /* §4.34: must be zero */
		STEP("KVM_SET_DEBUGREGS", kvm_ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &dr));
	}
out:
	free(xsave);
	free(nested);
	return r;
}

bool vcpu_state_nested_run_pending(const struct vcpu_state *st)
{
	return st->nested && (st->nested->flags & KVM_STATE_NESTED_RUN_PENDING);
}

bool vcpu_state_guest_mode(const struct vcpu_state *st)
{
	return st->nested && (st->nested->flags & KVM_STATE_NESTED_GUEST_MODE);
}

int vcpu_state_kvmclock_ctrl(int vcpu_fd)
{
	int r = kvm_ioctl(vcpu_fd, KVM_KVMCLOCK_CTRL, NULL);

	return r == -EINVAL ? 0 : r;
}

void vcpu_state_release(struct vcpu_state *st)
{
	if (!st)
		return;
	free(st->xsave);
	free(st->msrs);
	free(st->cpuid);
	free(st->nested);
	st->xsave = NULL;
	st->msrs = NULL;
	st->cpuid = NULL;
	st->nested = NULL;
	st->xsave_size = 0;
}

/* ---- VM-wide ---- */

int vm_kvm_state_save(int vm_fd, struct vm_kvm_state *out)
{
	struct vm_kvm_state st = {0};
	int r;

	st.has_irqchip = true;
	for (uint32_t i = 0; i < VM_STATE_NR_IRQCHIPS; i++) {
		st.irqchip[i].chip_id = i;
		r = kvm_ioctl(vm_fd, KVM_GET_IRQCHIP, &st.irqchip[i]);
		if (r == -ENXIO && i == 0) { /* no KVM_CREATE_IRQCHIP */
			st.has_irqchip = false;
			break;
		}
		if (r < 0)
			return r;
	}
	r = kvm_ioctl(vm_fd, KVM_GET_PIT2, &st.pit);
	st.has_pit = r == 0;
	if (r < 0 && r != -ENXIO)
		return r;
	r = kvm_ioctl(vm_fd, KVM_GET_CLOCK, &st.clock);
	if (r < 0)
		return r;
	*out = st;
	return 0;
}

int vm_kvm_state_restore(int vm_fd, const struct vm_kvm_state *st)
{
	int r = 0;

	for (uint32_t i = 0; st->has_irqchip && r == 0 && i < VM_STATE_NR_IRQCHIPS; i++) {
		struct kvm_irqchip chip = st->irqchip[i];

		r = kvm_ioctl(vm_fd, KVM_SET_IRQCHIP, &chip);
	}
	if (r == 0 && st->has_pit) {
		struct kvm_pit_state2 pit = st->pit;

		r = kvm_ioctl(vm_fd, KVM_SET_PIT2, &pit);
	}
	return r;
}

int vm_kvm_state_restore_clock(int vm_fd, const struct vm_kvm_state *st)
{
	struct kvm_clock_data c = {.clock = st->clock.clock};

	return kvm_ioctl(vm_fd, KVM_SET_CLOCK, &c);
}

/* ---- sections ---- */

int vcpu_state_write(struct snap_writer *w, uint32_t i, const struct vcpu_state *st)
{
	int r;

	r = snap_writer_add(w, VCPU_SEC_MP_STATE, i, 1, 0, &st->mp_state, sizeof(st->mp_state));
	if (r == 0)
		r = snap_writer_add(w, VCPU_SEC_REGS, i, 1, 0, &st->regs, sizeof(st->regs));
	if (r == 0)
		r = st->has_sregs2 ? snap_writer_add(w, VCPU_SEC_SREGS, i, 2, 0, &st->sregs2,
		                                     sizeof(st->sregs2))
		                   : snap_writer_add(w, VCPU_SEC_SREGS, i, 1, 0, &st->sregs,
		                                     sizeof(st->sregs));
	if (r == 0)
		r = st->xsave_size
		        ? snap_writer_add(w, VCPU_SEC_FPU, i, 2, 0, st->xsave, st->xsave_size)
		        : snap_writer_add(w, VCPU_SEC_FPU, i, 1, 0, &st->fpu, sizeof(st->fpu));
	if (r == 0 && st->has_xcrs)
		r = snap_writer_add(w, VCPU_SEC_XCRS, i, 1, 0, &st->xcrs, sizeof(st->xcrs));
	if (r == 0 && st->has_lapic)
		r = snap_writer_add(w, VCPU_SEC_LAPIC, i, 1, 0, &st->lapic, sizeof(st->lapic));
	if (r == 0)
		r = snap_writer_add(w, VCPU_SEC_EVENTS, i, 1, 0, &st->events, sizeof(st->events));
	if (r == 0 && st->has_debugregs)
		r = snap_writer_add(w, VCPU_SEC_DEBUGREGS, i, 1, 0, &st->debugregs,
		                    sizeof(st->debugregs));
	if (r == 0)
		r = snap_writer_add(w, VCPU_SEC_MSRS, i, 1, 0, st->msrs->entries,
		                    st->msrs->nmsrs * sizeof(st->msrs->entries[0]));
	if (r == 0)
		r = snap_writer_add(w, VCPU_SEC_CPUID, i, 1, 0, st->cpuid->entries,
		                    st->cpuid->nent * sizeof(st->cpuid->entries[0]));
	if (r == 0 && st->nested)
		r = snap_writer_add(w, VCPU_SEC_NESTED, i, 1, 0, st->nested, st->nested->size);
	return r;
}

/* Copy a fixed-size section after checking its exact length for its version. */
static int sec_copy(struct snap_reader *r, const struct snap_section *s, void *dst, size_t size)
{
	char n[64];

	if (!s)
		return -EBADMSG; /* sec_need() said why */
	if (s->length != size) {
		snap_section_name(s->desc, s->type, s->instance, n, sizeof(n));
		return snap_reader_fail(r, -EBADMSG,
		                        "section '%s' (version %u): %llu bytes, "
		                        "expected %zu",
		                        n, s->version, (unsigned long long)s->length, size);
	}
	memcpy(dst, s->data, size);
	return 0;
}

static int sec_bad(struct snap_reader *r, const struct snap_section *s, const char *why)
{
	char n[64];

	snap_section_name(s->desc, s->type, s->instance, n, sizeof(n));
	return snap_reader_fail(r, -EBADMSG, "section '%s': %s", n, why);
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool msr_has_duplicates(const struct kvm_msrs *m)
{
	uint32_t *idx = malloc((m->nmsrs + 1) * sizeof(uint32_t));
	bool dup = false;

	if (!idx)
		return true;
	for (uint32_t k = 0; k < m->nmsrs; k++)
		idx[k] = m->entries[k].index;
	qsort(idx, m->nmsrs, sizeof(uint32_t), u32_cmp);
	for (uint32_t k = 1; k < m->nmsrs; k++)
		dup |= idx[k] == idx[k - 1];
	free(idx);
	return dup;
}

/* A section the schema requires; NULL (with r->error set) if a caller parsed with another schema.
 */
static const struct snap_section *sec_need(struct snap_reader *r, uint32_t type, uint32_t i)
{
	const struct snap_section *s = snap_reader_find(r, type, i);
	char n[64];

	if (!s) {
		const struct snap_section_type *d = NULL;

		for (unsigned int k = 0; k < ARRAY_LEN(vcpu_state_section_types); k++)
			if (vcpu_state_section_types[k].type == type)
				d = &vcpu_state_section_types[k];
		snap_section_name(d, type, i, n, sizeof(n));
		snap_reader_fail(r, -EBADMSG, "section '%s' is missing", n);
	}
	return s;
}

static int vcpu_state_read_arrays(struct snap_reader *r, uint32_t i, struct vcpu_state *st)
{
	const struct snap_section *s = sec_need(r, VCPU_SEC_MSRS, i);
	uint32_t n;

	if (!s)
		return -EBADMSG;
	if (s->length % sizeof(struct kvm_msr_entry))
		return sec_bad(r, s, "length is not a whole number of MSR entries");
	n = (uint32_t)(s->length / sizeof(struct kvm_msr_entry));
	st->msrs = calloc(1, sizeof(*st->msrs) + s->length);
	if (!st->msrs)
		return -ENOMEM;
	st->msrs->nmsrs = n;
	memcpy(st->msrs->entries, s->data, s->length);
	for (uint32_t k = 0; k < n; k++)
		if (st->msrs->entries[k].reserved)
			return sec_bad(r, s, "reserved field of an MSR entry is not zero");
	if (msr_has_duplicates(st->msrs))
		return sec_bad(r, s, "an MSR appears twice");
	s = sec_need(r, VCPU_SEC_CPUID, i);
	if (!s)
		return -EBADMSG;
	if (s->length % sizeof(struct kvm_cpuid_entry2))
		return sec_bad(r, s, "length is not a whole number of CPUID entries");
	st->cpuid = kvm_cpuid_alloc((unsigned int)(s->length / sizeof(struct kvm_cpuid_entry2)));
	if (!st->cpuid)
		return -ENOMEM;
	memcpy(st->cpuid->entries, s->data, s->length);
	return 0;
}

static int vcpu_state_read_fpu(struct snap_reader *r, const struct snap_section *s,
                               struct vcpu_state *st)
{
	if (s->version == 1)
		return sec_copy(r, s, &st->fpu, sizeof(st->fpu));
	if (s->length < XSAVE_LEGACY_SIZE || s->length % 4)
		return sec_bad(r, s, "an XSAVE area is a multiple of 4 bytes, at least 4096");
	st->xsave = calloc(1, s->length);
	if (!st->xsave)
		return -ENOMEM;
	st->xsave_size = (uint32_t)s->length;
	memcpy(st->xsave, s->data, s->length);
	return 0;
}

static int vcpu_state_read_nested(struct snap_reader *r, const struct snap_section *s,
                                  struct vcpu_state *st)
{
	struct kvm_nested_state h;

	memcpy(&h, s->data, sizeof(h)); /* the schema guarantees a whole header */
	if (h.size != s->length)
		return sec_bad(r, s, "its size field does not match its length");
	if (h.format != KVM_STATE_NESTED_FORMAT_VMX && h.format != KVM_STATE_NESTED_FORMAT_SVM)
		return sec_bad(r, s, "unknown nested state format (neither VMX nor SVM)");
	st->nested = malloc(s->length);
	if (!st->nested)
		return -ENOMEM;
	memcpy(st->nested, s->data, s->length);
	return 0;
}

int vcpu_state_read(struct snap_reader *r, uint32_t i, struct vcpu_state *out)
{
	struct vcpu_state st = {0};
	const struct snap_section *s;
	int err;

	if (i >= r->nr_vcpus)
		return snap_reader_fail(r, -EINVAL, "no vCPU %u (the snapshot has %u)", i,
		                        r->nr_vcpus);
	/* Required sections are present: snap_reader_parse() checked. */
	err = sec_copy(r, sec_need(r, VCPU_SEC_MP_STATE, i), &st.mp_state, sizeof(st.mp_state));
	if (!err)
		err = sec_copy(r, sec_need(r, VCPU_SEC_REGS, i), &st.regs, sizeof(st.regs));
	if (!err && !(s = sec_need(r, VCPU_SEC_SREGS, i)))
		err = -EBADMSG;
	if (!err) {
		st.has_sregs2 = s->version == 2;
		err = st.has_sregs2 ? sec_copy(r, s, &st.sregs2, sizeof(st.sregs2))
		                    : sec_copy(r, s, &st.sregs, sizeof(st.sregs));
	}
	if (!err && !(s = sec_need(r, VCPU_SEC_FPU, i)))
		err = -EBADMSG;
	if (!err)
		err = vcpu_state_read_fpu(r, s, &st);
	if (!err && (s = snap_reader_find(r, VCPU_SEC_XCRS, i))) {
		st.has_xcrs = true;
		err = sec_copy(r, s, &st.xcrs, sizeof(st.xcrs));
		if (!err && st.xcrs.nr_xcrs > KVM_MAX_XCRS)
			err = sec_bad(r, s, "more XCRs than KVM_MAX_XCRS");
	}
	if (!err && (s = snap_reader_find(r, VCPU_SEC_LAPIC, i))) {
		st.has_lapic = true;
		err = sec_copy(r, s, &st.lapic, sizeof(st.lapic));
	}
	if (!err)
		err = sec_copy(r, sec_need(r, VCPU_SEC_EVENTS, i), &st.events, sizeof(st.events));
	if (!err && (s = snap_reader_find(r, VCPU_SEC_DEBUGREGS, i))) {
		st.has_debugregs = true;
		err = sec_copy(r, s, &st.debugregs, sizeof(st.debugregs));
	}
	if (!err)
		err = vcpu_state_read_arrays(r, i, &st);
	if (!err && (s = snap_reader_find(r, VCPU_SEC_NESTED, i)))
		err = vcpu_state_read_nested(r, s, &st);
	if (err == -ENOMEM)
		snap_reader_fail(r, err, "out of memory");
	if (err) {
		vcpu_state_release(&st);
		return err;
	}
	*out = st;
	return 0;
}

int vm_kvm_state_write(struct snap_writer *w, const struct vm_kvm_state *st)
{
	int r = 0;

	for (uint32_t i = 0; st->has_irqchip && r == 0 && i < VM_STATE_NR_IRQCHIPS; i++)
		r = snap_writer_add(w, VM_SEC_IRQCHIP, i, 1, 0, &st->irqchip[i],
		                    sizeof(st->irqchip[i]));
	if (r == 0 && st->has_pit)
		r = snap_writer_add(w, VM_SEC_PIT, 0, 1, 0, &st->pit, sizeof(st->pit));
	if (r == 0)
		r = snap_writer_add(w, VM_SEC_CLOCK, 0, 1, 0, &st->clock, sizeof(st->clock));
	return r;
}

int vm_kvm_state_read(struct snap_reader *r, struct vm_kvm_state *out)
{
	struct vm_kvm_state st = {0};
	const struct snap_section *s;
	int err = 0;

	for (uint32_t i = 0; !err && i < VM_STATE_NR_IRQCHIPS; i++) {
		s = snap_reader_find(r, VM_SEC_IRQCHIP, i);
		if (!s)
			break; /* the set is complete or empty: parse checked */
		st.has_irqchip = true;
		err = sec_copy(r, s, &st.irqchip[i], sizeof(st.irqchip[i]));
		if (!err && st.irqchip[i].chip_id != i)
			err = sec_bad(r, s, "chip id does not match the instance");
	}
	if (!err && (s = snap_reader_find(r, VM_SEC_PIT, 0))) {
		st.has_pit = true;
		err = sec_copy(r, s, &st.pit, sizeof(st.pit));
	}
	if (!err)
		err = sec_copy(r, sec_need(r, VM_SEC_CLOCK, 0), &st.clock, sizeof(st.clock));
	if (!err)
		*out = st;
	return err;
}
