/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_VIRTIO_PCI_H
#define NESTVM_DEVICES_VIRTIO_VIRTIO_PCI_H

#include "core/device.h"
#include "core/guest_mem.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtqueue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifndef container_of
/* container_of - the struct of @type whose @member is at @ptr. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

/*
 * Virtio over PCI, modern interface only (virtio 1.2 §4.1), and the common
 * frame every nestvm virtio device lives in.
 *
 * A device model (blk.c, rng.c, ...) embeds a struct virtio_device, fills in
 * its identity, offered features, queues and a const struct
 * virtio_device_ops, and is then put on the PCI bus by virtio_pci_create():
 *
 *   PCI function   vendor 0x1af4, device 0x1040 + device id, revision 1,
 *                  subsystem 0x1af4 / device id; no INTx (interrupt pin 0):
 *                  the DSDT has no _PRT, so interrupts are MSI-X only.
 *   BAR0, 32 KiB of 32-bit MMIO, non-prefetchable:
 *     0x0000  common configuration  (VIRTIO_PCI_CAP_COMMON_CFG, §4.1.4.3)
 *     0x1000  ISR status, 1 byte      (VIRTIO_PCI_CAP_ISR_CFG, §4.1.4.5)
 *     0x2000  device configuration    (VIRTIO_PCI_CAP_DEVICE_CFG, §4.1.4.6)
 *     0x3000  queue notify, 4 bytes per queue (VIRTIO_PCI_CAP_NOTIFY_CFG,
 *             notify_off_multiplier 4, queue_notify_off = queue index)
 *     0x4000  MSI-X table, one vector per queue plus one for configuration
 *     0x5000  MSI-X pending bit array
 *   Capabilities: the five virtio ones (including VIRTIO_PCI_CAP_PCI_CFG,
 *   the window into BAR0 through configuration space, §4.1.4.9) and MSI-X
 *   (PCI 3.0 §6.8.2).
 *
 * Queue notifications: a guest write to a queue's notify address goes to
 * that queue's eventfd, either straight from KVM (KVM_IOEVENTFD, registered
 * through cfg->ioeventfd while BAR0 decodes memory) or through the MMIO exit
 * and bar_io. Either way the device sees it on its own I/O thread, never on
 * a vCPU thread. Interrupts are MSI-X messages sent with cfg->msi_send
 * (KVM_SIGNAL_MSI); a masked vector sets its pending bit and fires when
 * unmasked.
 *
 * Threads and locking: each device has one I/O thread, created here, which
 * waits (epoll) on the queues' eventfds and on whatever file descriptors the
 * device watches (virtio_device_watch()). One mutex per device serialises
 * the I/O thread's callbacks with the guest's register accesses (bar_io on a
 * vCPU thread) and configuration accesses: every virtio_device_ops hook and
 * every watch callback runs with it held. Lock order: the PCI host lock,
 * then this one.
 *
 * Feature negotiation (§2.2, §3.1.1): the driver's feature bits are checked
 * when it sets FEATURES_OK; if it accepted anything not offered, or not
 * VIRTIO_F_VERSION_1, FEATURES_OK stays clear, which the driver sees when it
 * reads the status back.
 *
 * Needs-reset: when a device finds a ring malformed it calls
 * virtio_device_set_needs_reset(): DEVICE_NEEDS_RESET is set in the status
 * (§2.1.2), the configuration-change interrupt fires, and no queue of that
 * device is processed until the driver resets it. The VM and the other
 * devices go on.
 *
 * Lifecycle (core/device.h): each function is one device of the VM's list,
 * with virtio_pci_device_ops (the list's pointer is the struct virtio_pci;
 * its destroy frees the device model too).
 *
 *   quiesce  parks the I/O thread at the end of its current batch of
 *            events; there, before it waits, the model's ops->quiesce
 *            finishes what the device took from its queues (virtio-blk:
 *            every request popped is completed on the disk, in the used ring,
 *            its interrupt sent). Nothing touches guest memory or sends an
 *            interrupt afterwards; kicks and host socket events wait in their
 *            file descriptors. Bounded by VIRTIO_PCI_QUIESCE_TIMEOUT_MS
 *            (-ETIMEDOUT, the device then runs on).
 *   resume   releases the thread and looks at every enabled queue once, as if
 *            the driver had notified it: buffers made available (and kicks
 *            lost) while it was parked are processed.
 *   save     the transport's state, then the model's (ops->save). A chain the
 *            model still holds and will take again (ops->held) is saved as
 *            not yet taken; any other chain in flight makes the save fail
 *            (-EBUSY): quiesce first. (A device waiting for a reset may have
 *            dropped the chain that broke it: that one is saved as it is.)
 *   restore  into a device just created with the same configuration, before
 *            any vCPU runs: parks the thread, checks the whole state, resets
 *            the device, loads the model's state (ops->restore), then the
 *            transport's, starts the model again if the driver had
 *            (ops->activate), and moves the ioeventfds to the restored BAR0. It
 *            touches no guest memory and sends no interrupt. A restored device
 *            needs no resume: its I/O thread waits until cfg->guest_running
 *            says the vCPUs run (memory and the interrupt controller are
 *            restored by then), then looks at every enabled queue once and
 *            calls ops->restarted; until then every event waits. On failure
 *            (-EBADMSG with the reason in the reader) the device is as reset.
 *   reset    the device and its PCI function back to how they were created.
 *
 * The saved state, version VIRTIO_PCI_STATE_VERSION, little-endian:
 *   u16 device id, u16 queues, u16 MSI-X vectors (must match this device)
 *   u8 device status, u64 driver features, u32 device feature select,
 *   u32 driver feature select, u16 config MSI-X vector, u16 queue select,
 *   u8 config generation, u8 ISR
 *   256 bytes of PCI configuration space (the guest-writable bits are taken,
 *       the others must equal this device's)
 *   MSI-X table (16 bytes per vector), pending bits (u64 per 64 vectors)
 *   per queue: its struct virtq_state (virtq_state_put()), u16 MSI-X vector
 *   then the model's own state.
 */

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040
#define VIRTIO_PCI_REVISION 1

/* Capability cfg_type values (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* struct virtio_pci_common_cfg field offsets (§4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_Q_NDATA 0x38
#define VIRTIO_PCI_COMMON_Q_RESET 0x3a
#define VIRTIO_PCI_COMMON_CFG_SIZE 0x3c

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* ISR status bits (§4.1.4.5). */
#define VIRTIO_PCI_ISR_QUEUE 0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

/* BAR0 layout (see above). */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_DEVICE_SIZE 0x1000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x5000
#define VIRTIO_PCI_MAX_QUEUES 64 /* notify area and MSI-X table stay in their 4 KiB */

/* MSI-X capability (PCI 3.0 §6.8.2) and table entries. */
#define PCI_MSIX_FLAGS 2 /* message control, offset in the capability */
#define PCI_MSIX_FLAGS_QSIZE 0x07ff
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 4
#define PCI_MSIX_PBA 8
#define PCI_MSIX_CAP_SIZE 12
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_ENTRY_VECTOR_CTRL 12
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 1

#define VIRTIO_PCI_STATE_VERSION 1
#define VIRTIO_PCI_QUIESCE_TIMEOUT_MS 5000

struct virtio_device;
struct virtio_pci;

/*
 * What a device model implements. All hooks run with the device lock held;
 * any may be NULL.
 */
struct virtio_device_ops {
	/* The driver reads or writes [offset, offset + len) of the device config (< config_size).
	 */
	void (*config_read)(struct virtio_device *vdev, uint32_t offset, void *data, uint32_t len);
	void (*config_write)(struct virtio_device *vdev, uint32_t offset, const void *data,
	                     uint32_t len);
	/*
	 * The driver set DRIVER_OK: the negotiated features are in vdev->acked
	 * and the enabled queues are started. Return 0, or -errno to have the
	 * device ask for a reset. Also called when a device the driver had
	 * started is restored: it must not touch guest memory nor interrupt.
	 */
	int (*activate)(struct virtio_device *vdev);
	/* Queue @q has (or may have) new buffers; called on the I/O thread. */
	void (*queue_notify)(struct virtio_device *vdev, unsigned int q);
	/*
	 * The driver reset the device (or the VM is going away): finish or
	 * abandon every request so that nothing touches guest memory once this
	 * returns; drop connections, buffered data and per-driver state.
	 */
	void (*reset)(struct virtio_device *vdev);

	/* Lifecycle (see the top of this file); lock held unless said otherwise. */
	/*
	 * On the I/O thread, about to park: finish by @deadline
	 * (CLOCK_MONOTONIC) what the device took from its queues, so that
	 * nothing touches guest memory until it resumes. 0 or -ETIMEDOUT.
	 */
	int (*quiesce)(struct virtio_device *vdev, const struct timespec *deadline);
	/*
	 * How many chains of queue @q, its most recent pops, the device still
	 * holds after quiesce and would simply take again after a restore.
	 */
	unsigned int (*held)(struct virtio_device *vdev, unsigned int q);
	/* Append the device's own state to @out. 0 or -errno (-EBUSY: not quiesced). */
	int (*save)(struct virtio_device *vdev, struct dev_state *out);
	/*
	 * Read and check the device's own state, the rest of @in (up to
	 * virtio_state_end()), then load it into the device, which was just
	 * reset; the transport's state is loaded after it. Change nothing on
	 * failure (0 or -EBADMSG, the reason through dsi_check()), touch no
	 * guest memory, send no interrupt.
	 */
	int (*restore)(struct virtio_device *vdev, struct dev_state_in *in, uint32_t version);
	/*
	 * On the I/O thread, once the guest runs after a restore: what the
	 * device owes the driver (vsock's transport reset), if it is live
	 * (virtio_device_is_live()). Every enabled queue is then looked at
	 * as if notified.
	 */
	void (*restarted)(struct virtio_device *vdev);
	/* virtio_pci_stop(): let go of what must not outlive the VM (an image and its lock). */
	void (*stop)(struct virtio_device *vdev);
	/* Free the device model, after its transport (no lock). */
	void (*destroy)(struct virtio_device *vdev);
};

/*
 * The frame of a virtio device. The device model fills the first block
 * before virtio_pci_create() and must not change it afterwards; the second
 * block belongs to the transport (readable under the device lock).
 */
struct virtio_device {
	const struct virtio_device_ops *ops;
	const char *name;
	uint16_t device_id;   /* VIRTIO_ID_* */
	uint32_t class_code;  /* PCI class, base << 16 | sub << 8 | prog-if */
	uint64_t features;    /* offered; the transport adds VIRTIO_F_VERSION_1 */
	uint32_t config_size; /* bytes of device configuration, <= VIRTIO_PCI_DEVICE_SIZE */
	unsigned int nr_queues;
	struct virtq *vqs; /* nr_queues of them, virtq_init()ed with their max sizes */

	struct virtio_pci *transport;
	uint64_t acked; /* negotiated features, valid from FEATURES_OK */
	uint8_t status;
};

struct virtio_pci_config {
	const struct guest_mem *mem;
	/* BAR0 as firmware would assign it (0: leave it for the guest to assign). */
	uint64_t bar_addr;
	/* Send MSI message @data to @addr (KVM_SIGNAL_MSI). Required. */
	int (*msi_send)(void *opaque, uint64_t addr, uint32_t data);
	/*
	 * Optional: have KVM signal @fd on a @len-byte write to guest-physical
	 * @gpa (KVM_IOEVENTFD), or undo it (@assign false). NULL: notifications
	 * come through MMIO exits only.
	 */
	int (*ioeventfd)(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign);
	/*
	 * Optional: whether the VM's vCPUs run. A restored device waits for it
	 * before it touches guest memory again (the I/O thread asks every
	 * millisecond). NULL: at once.
	 */
	bool (*guest_running)(void *opaque);
	void *opaque;
};

/*
 * virtio_pci_create - wrap @vdev in a virtio PCI function and start its I/O
 * thread. Add virtio_pci_device() to the PCI host afterwards. @vdev must
 * outlive the transport. Returns 0 or -errno (-EINVAL for a bad @vdev).
 */
int virtio_pci_create(struct virtio_device *vdev, const struct virtio_pci_config *cfg,
                      struct virtio_pci **out) __attribute__((warn_unused_result));

/* virtio_pci_device - the PCI function, for pci_host_add_device(). */
struct pci_device *virtio_pci_device(struct virtio_pci *vp);

/*
 * virtio_pci_stop - stop the I/O thread and reset the device (ops->reset,
 * then ops->stop), so that nothing touches guest memory afterwards; the
 * guest's accesses still work but no queue runs again. Idempotent.
 */
void virtio_pci_stop(struct virtio_pci *vp);

/*
 * virtio_pci_destroy - stop, unregister the ioeventfds, free the transport
 * (not the device model); NULL is a no-op.
 */
void virtio_pci_destroy(struct virtio_pci *vp);

/* virtio_pci_vdev - the device model inside. */
struct virtio_device *virtio_pci_vdev(struct virtio_pci *vp);

/*
 * The lifecycle (see the top of this file), from any thread but the
 * device's own; virtio_pci_device_ops calls these with the struct
 * virtio_pci as its device.
 * virtio_pci_quiesce - 0, or -ETIMEDOUT / the model's error (it runs on).
 * virtio_pci_resume - after a successful quiesce.
 * virtio_pci_save - append the state to @out; 0 or -EBUSY (chains in flight).
 * virtio_pci_restore - 0, or -EBADMSG / -ESHUTDOWN / -ETIMEDOUT with the
 *   reason in @in (dsi_check()).
 * virtio_pci_reset - back to how it was created.
 */
int virtio_pci_quiesce(struct virtio_pci *vp) __attribute__((warn_unused_result));
void virtio_pci_resume(struct virtio_pci *vp);
int virtio_pci_save(struct virtio_pci *vp, struct dev_state *out)
    __attribute__((warn_unused_result));
int virtio_pci_restore(struct virtio_pci *vp, struct dev_state_in *in, uint32_t version)
    __attribute__((warn_unused_result));
void virtio_pci_reset(struct virtio_pci *vp);

/*
 * The device_ops of a virtio PCI function (version VIRTIO_PCI_STATE_VERSION);
 * its destroy also calls the model's ops->destroy.
 */
extern const struct device_ops virtio_pci_device_ops;

/*
 * virtio_state_end - for a model's ops->restore: true if @in is good and
 * fully read, else fails it ("bytes left over").
 */
bool virtio_state_end(struct dev_state_in *in);

/* virtio_pci_bar_io - the pci_device_ops bar_io hook (exposed for tests). */
void virtio_pci_bar_io(struct pci_device *dev, unsigned int bar, uint64_t offset, void *data,
                       uint32_t len, bool is_write);

/*
 * For device models. All of these expect the device lock held, which it is
 * in every ops hook and watch callback.
 */

/* virtio_device_has - whether feature @bit was negotiated. */
static inline bool virtio_device_has(const struct virtio_device *vdev, unsigned int bit)
{
	return vdev->acked & VIRTIO_BIT(bit);
}

/* virtio_device_is_live - DRIVER_OK, not failed, not waiting for a reset. */
bool virtio_device_is_live(const struct virtio_device *vdev);

/*
 * virtio_device_notify_queue - after pushing to queue @q: interrupt the
 * driver if it wants one (virtq_should_notify()).
 */
void virtio_device_notify_queue(struct virtio_device *vdev, unsigned int q);

/*
 * virtio_device_set_needs_reset - a malformed ring or request: set
 * DEVICE_NEEDS_RESET, send the configuration interrupt and stop processing
 * queues until the driver resets the device. @why is logged once.
 */
void virtio_device_set_needs_reset(struct virtio_device *vdev, const char *why);

/* virtio_device_config_changed - bump config_generation and send the config interrupt. */
void virtio_device_config_changed(struct virtio_device *vdev);

typedef void (*virtio_watch_fn)(struct virtio_device *vdev, int fd, uint32_t revents, void *arg);

/*
 * virtio_device_watch - call @fn(vdev, fd, revents, arg) on the I/O thread,
 * device lock held, whenever @fd has one of @events (EPOLLIN, EPOLLOUT...).
 * Watching an fd again changes its events (and keeps fn/arg). Returns 0 or
 * -errno. virtio_device_unwatch - stop watching @fd (before closing it).
 */
int virtio_device_watch(struct virtio_device *vdev, int fd, uint32_t events, virtio_watch_fn fn,
                        void *arg) __attribute__((warn_unused_result));
void virtio_device_unwatch(struct virtio_device *vdev, int fd);

/*
 * virtio_device_lock, virtio_device_unlock - for code running outside the
 * hooks and callbacks (a device's own helper threads).
 */
void virtio_device_lock(struct virtio_device *vdev);
void virtio_device_unlock(struct virtio_device *vdev);

/*
 * virtio_device_kick - make the I/O thread call ops->queue_notify(@q) soon,
 * as a guest notification would. Safe from any thread, lock held or not.
 */
void virtio_device_kick(struct virtio_device *vdev, unsigned int q);

#endif
