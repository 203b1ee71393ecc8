/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_VIRTIO_PCI_INTERNAL_H
#define NESTVM_DEVICES_VIRTIO_VIRTIO_PCI_INTERNAL_H

/*
 * The virtio PCI transport's own state, shared by virtio_pci.c (registers,
 * MSI-X, the I/O thread) and virtio_pci_state.c (quiesce, save, restore,
 * reset). Nothing else includes this.
 */
#include "devices/virtio/virtio_pci.h"

#define VP_MAX_VECTORS (VIRTIO_PCI_MAX_QUEUES + 1)
#define VP_EPOLL_BATCH 16
#define VP_SUBSYSTEM_ID 0x1100 /* what QEMU's modern virtio functions use */
#define VP_PBA_WORDS ((VP_MAX_VECTORS + 63) / 64)
#define VP_RUN_POLL_NS 1000000 /* a restored device asks whether the guest runs this often */

struct virtio_watch {
	int fd;
	uint32_t events;
	virtio_watch_fn fn;
	void *arg;
	bool dead;
	struct virtio_watch *next;
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_device *vdev;
	struct virtio_pci_config cfg;
	pthread_mutex_t lock;

	/* Common configuration registers. */
	uint32_t dfselect;
	uint32_t gfselect;
	uint64_t driver_features; /* as the driver wrote them */
	uint16_t config_vector;
	uint16_t queue_select;
	uint16_t queue_vector[VIRTIO_PCI_MAX_QUEUES];
	uint8_t config_generation;
	uint8_t isr;
	bool needs_reset_logged;
	bool stopped;                            /* virtio_pci_stop(): no queue runs again */
	uint8_t config_init[PCI_CFG_SPACE_SIZE]; /* the configuration space as created */

	/* MSI-X: table, pending bits, and the capability's enable and mask bits. */
	unsigned int nr_vectors;
	uint8_t msix_table[VP_MAX_VECTORS * PCI_MSIX_ENTRY_SIZE];
	uint64_t msix_pba[VP_PBA_WORDS];
	bool msix_enabled;
	bool msix_masked;
	int msix_cap;
	int pcicfg_cap;

	/* Notifications. */
	int kick_fd[VIRTIO_PCI_MAX_QUEUES];
	uint64_t ioevent_base; /* BAR0 address the ioeventfds are registered at; 0: none */

	/* The I/O thread. */
	int epfd;
	int wake_fd; /* written to make the thread look at stopping and parkers */
	bool stopping;
	pthread_t thread;
	bool thread_started;
	bool thread_running; /* under lock */
	struct virtio_watch kick_watch[VIRTIO_PCI_MAX_QUEUES];
	struct virtio_watch wake_watch;
	struct virtio_watch *watches;
	struct virtio_watch *graveyard;

	/* Parking the I/O thread (quiesce, restore, reset); all under lock. */
	pthread_cond_t park_cond; /* CLOCK_MONOTONIC; parked and parkers changes */
	unsigned int parkers;     /* callers that want the thread parked */
	bool parked;              /* it ran ops->quiesce and waits */
	int park_result;          /* what ops->quiesce returned */
	struct timespec park_deadline;
	bool until_run; /* restored: wait for cfg->guest_running, then restart */
};

/* vp_offered - the features the device offers, VERSION_1 included. */
uint64_t vp_offered(const struct virtio_pci *vp);

/* vp_reset - device reset (§2.4), as a driver's write of 0 to the status does. Lock held. */
void vp_reset(struct virtio_pci *vp);

/* vp_update_ioeventfds - move the ioeventfds to where BAR0 decodes now (nowhere if off). */
void vp_update_ioeventfds(struct virtio_pci *vp);

/* vp_update_msix - take MSI-X enable and mask-all from the configuration space. Lock held. */
void vp_update_msix(struct virtio_pci *vp);

/*
 * vp_park - hold the I/O thread at its park point, once it ran ops->quiesce
 * there (in this thread if there is no I/O thread), within @timeout_ms.
 * Returns 0 (parked: call vp_unpark() later) or -ETIMEDOUT / the hook's
 * error (not parked). vp_unpark - let it go. Lock held.
 */
int vp_park(struct virtio_pci *vp, int timeout_ms);
void vp_unpark(struct virtio_pci *vp);

#endif
