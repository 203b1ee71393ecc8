/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_DEVICE_H
#define NESTVM_CORE_DEVICE_H

#include "snapshot/format.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The device lifecycle layer. Everything a VM consists of, the legacy
 * devices, the PCI host, each virtio transport and device, and the KVM
 * state (irqchip and PIT, each vCPU, the clock), is a device: a pointer and a
 * const struct device_ops, registered in a struct device_list in the order
 * the machine creates them. That order is the one state is saved and
 * restored in, and the reverse is the one they are destroyed in.
 *
 * Life of a device:
 *   created -> [restore] -> running <-> quiesced -> destroyed
 *
 *   quiesce  stop touching guest memory and raising interrupts: park the
 *            device's threads, finish (or park, to replay on resume) its
 *            in-flight I/O. Called with the vCPUs already parked. After it
 *            returns 0, save() sees a state that nothing changes.
 *   resume   undo quiesce.
 *   save     append the device's state to a struct dev_state (plain,
 *            little-endian, versioned by ops->version); quiesced.
 *   restore  load that state into a freshly created device, before any
 *            vCPU runs. It must check everything (the bytes come from a
 *            file) and must not raise interrupts: the line and MSI state
 *            is in the irqchip's own saved state.
 *   reset    back to power-on state (a guest reset).
 *   destroy  free it, joining its threads; NULL-safe like every _destroy.
 *
 * A device that owns snapshot sections of its own (the KVM state, see
 * arch/x86/vcpu_state.h) sets save_sections/restore_sections instead of
 * save/restore. Every other device's state goes into one DEVICE section
 * (docs/snapshot.md): its name, then its bytes, with ops->version as the
 * section version.
 */

struct vm;

/* A growing little-endian byte buffer for save(); starts zeroed ({0}). Errors are sticky. */
struct dev_state {
	uint8_t *buf;
	size_t len, cap;
	int error; /* -ENOMEM or -EFBIG once a put failed */
};

/* A bounded reader of one device's saved bytes, for restore(). */
struct dev_state_in {
	const uint8_t *buf;
	size_t len, pos;
	bool bad; /* a read went past the end or a check failed */
	char why[160];
};

struct device_ops {
	const char *kind;    /* "uart-16550", for messages */
	uint32_t version;    /* of the state save() writes; restore() gets the file's */
	int (*quiesce)(void *dev);
	void (*resume)(void *dev);
	void (*reset)(void *dev);
	int (*save)(void *dev, struct dev_state *out);
	int (*restore)(void *dev, struct dev_state_in *in, uint32_t version);
	int (*save_sections)(void *dev, struct snap_writer *w);
	int (*restore_sections)(void *dev, struct snap_reader *r);
	void (*destroy)(void *dev);
};

#define DEVICE_NAME_MAX 32 /* bytes of a device's name in a snapshot, NUL included */
#define DEVICE_LIST_MAX 64
#define DEVICE_STATE_MAX (1u << 20) /* bytes of one device's save() */

struct device {
	char name[DEVICE_NAME_MAX]; /* unique in the VM: "com1", "virtio-blk0" */
	const struct device_ops *ops;
	void *dev;
	bool quiesced;
};

struct device_list {
	struct device devs[DEVICE_LIST_MAX];
	unsigned int nr;
};

/*
 * device_register - add @dev with @ops as @name to @dl. The list owns it
 * from now on: device_list_destroy() calls ops->destroy. Returns 0,
 * -EEXIST (the name is taken), -ENOSPC or -ENAMETOOLONG; on failure @dev
 * is destroyed too, so callers never free it themselves.
 */
int device_register(struct device_list *dl, const char *name, const struct device_ops *ops,
                    void *dev) __attribute__((warn_unused_result));

/* device_find - the device called @name, or NULL. */
struct device *device_find(struct device_list *dl, const char *name);

/*
 * device_list_quiesce - quiesce every device, last registered first. If one
 * fails, the ones already quiesced are resumed and its error returned.
 * device_list_resume - resume the quiesced ones, first registered first.
 */
int device_list_quiesce(struct device_list *dl) __attribute__((warn_unused_result));
void device_list_resume(struct device_list *dl);

/* device_list_reset - reset every device, first registered first. */
void device_list_reset(struct device_list *dl);

/*
 * device_list_save - every device's state into @w, in list order.
 * Returns 0 or -errno; the device at fault is logged.
 */
int device_list_save(struct device_list *dl, struct snap_writer *w)
    __attribute__((warn_unused_result));

/*
 * device_list_restore - load every device's state from @r, in list order.
 * The snapshot's devices must be the list's, name for name. Returns 0, or
 * -EBADMSG / -EPROTONOSUPPORT / -errno with the reason in @why.
 */
int device_list_restore(struct device_list *dl, struct snap_reader *r, char *why, size_t len)
    __attribute__((warn_unused_result));

/* device_list_destroy - destroy every device, last registered first. */
void device_list_destroy(struct device_list *dl);

/* The snapshot section of one device's state; instance = its index in the list. */
#define DEVICE_SEC_STATE 0x300
extern const struct snap_section_type device_section_type;

/* Writing a state: ds_put_* append; ds_release() frees the buffer. */
void ds_put_u8(struct dev_state *s, uint8_t v);
void ds_put_u16(struct dev_state *s, uint16_t v);
void ds_put_u32(struct dev_state *s, uint32_t v);
void ds_put_u64(struct dev_state *s, uint64_t v);
void ds_put_bool(struct dev_state *s, bool v);
void ds_put_bytes(struct dev_state *s, const void *p, size_t len);
void ds_release(struct dev_state *s);

/*
 * Reading one: dsi_get_* return the next value, or 0 (and set in->bad)
 * past the end; dsi_get_bool also fails on a byte other than 0 or 1.
 * dsi_check() fails the state with a reason when @ok is false;
 * dsi_finish() fails it if bytes are left over, and returns 0 or -EBADMSG.
 */
void dsi_init(struct dev_state_in *in, const void *buf, size_t len);
uint8_t dsi_get_u8(struct dev_state_in *in);
uint16_t dsi_get_u16(struct dev_state_in *in);
uint32_t dsi_get_u32(struct dev_state_in *in);
uint64_t dsi_get_u64(struct dev_state_in *in);
bool dsi_get_bool(struct dev_state_in *in);
void dsi_get_bytes(struct dev_state_in *in, void *p, size_t len);
bool dsi_check(struct dev_state_in *in, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int dsi_finish(struct dev_state_in *in) __attribute__((warn_unused_result));

#endif
