/* SPDX-License-Identifier: MIT */
/*
 * The VM's virtio devices on PCI bus 0: one virtio PCI function per --disk,
 * one each for --rng, --vsock and the virtio consoles (--virtio-console,
 * --console-port), and one per --nic. Each gets a 32 KiB BAR0 placed, as firmware would, in the
 * 32-bit MMIO window (LAYOUT_PCI_MMIO32, upwards from its start), MSI-X
 * interrupts sent with KVM_SIGNAL_MSI, and its queue notifications as
 * KVM ioeventfds.
 *
 * Each function (transport and device model) is a device of vm->devices,
 * named "virtio-blk0".."virtio-blk7", "virtio-rng", "virtio-vsock",
 * "virtio-console", "virtio-net0".."virtio-net7" in creation order; the list
 * owns it.
 *
 * A NIC joins its switch as it is created (net/switch_link.h), so a VM
 * restored or migrated here has its adapters on their switches again before
 * it runs. A switch that cannot be reached fails the VM's creation, with
 * the reason.
 */
#include "core/machine.h"

#include "arch/x86/layout.h"
#include "core/log.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/vsock.h"
#include "net/switch_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MACHINE_VIRTIO_MAX (VM_MAX_DISKS + 4 + VM_MAX_NICS)

/* Creation-time bookkeeping; the functions themselves belong to vm->devices. */
struct machine_virtio {
	struct vm *vm;
	uint64_t mmio_next; /* next free BAR address in the 32-bit window */
	bool ioeventfd;     /* KVM_CAP_IOEVENTFD */
	unsigned int nr_pci;
	char serial[VM_MAX_DISKS][VIRTIO_BLK_ID_BYTES + 1];
	struct disk *disks[VM_MAX_DISKS]; /* each disk's image, for machine_disks_lock() */
	unsigned int nr_disks;
	struct virtio_net *nets[VM_MAX_NICS]; /* each NIC, for machine_nic_stats() */
	unsigned int nr_nets;
};

/*
 * The transports' callbacks get the struct vm, not the struct
 * machine_virtio: the device list may destroy them after
 * machine_destroy_virtio() freed the latter.
 */

/* KVM_SIGNAL_MSI: one MSI message to the in-kernel local APICs. */
static int machine_msi_send(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	struct kvm_msi msi = {
	    .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};
	int r = kvm_ioctl(vm->fd, KVM_SIGNAL_MSI, &msi);

	return r < 0 ? r : 0;
}

/* KVM_IOEVENTFD: @fd is signalled by KVM itself on a @len-byte write to @gpa. */
static int machine_ioeventfd(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign)
{
	struct vm *vm = opaque;
	struct kvm_ioeventfd io = {
	    .addr = gpa, .len = len, .fd = fd, .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};

	return kvm_ioctl(vm->fd, KVM_IOEVENTFD, &io);
}

/* Whether the vCPUs run: a restored virtio device waits for it (virtio_pci.h). */
static bool machine_guest_running(void *opaque)
{
	struct vm *vm = opaque;
	bool running;

	pthread_mutex_lock(&vm->lock);
	running = vm->running && !vm->pause_requested;
	pthread_mutex_unlock(&vm->lock);
	return running;
}

/*
 * Wrap @vdev in a virtio PCI function with its BAR placed, register it in
 * vm->devices as @name and put it on the bus: at function 0 of device @slot
 * (vm_config's *pci_slot), or of the first free device number if @slot is 0.
 * Takes @vdev: on any failure it is destroyed (by the device list once
 * registered).
 */
static int machine_add_virtio(struct machine_virtio *mv, struct virtio_device *vdev,
                              const char *name, unsigned int slot)
{
	struct virtio_pci_config cfg = {
	    .mem = &mv->vm->mem,
	    .msi_send = machine_msi_send,
	    .ioeventfd = mv->ioeventfd ? machine_ioeventfd : NULL,
	    .guest_running = machine_guest_running,
	    .opaque = mv->vm,
	};
	struct virtio_pci *vp = NULL;
	int r = 0;

	if (slot >= PCI_MAX_DEVICES)
		r = -EINVAL;
	else if (mv->nr_pci == MACHINE_VIRTIO_MAX ||
	         mv->mmio_next + VIRTIO_PCI_BAR_SIZE > LAYOUT_PCI_MMIO32 + LAYOUT_PCI_MMIO32_SIZE)
		r = -ENOSPC;
	cfg.bar_addr = mv->mmio_next;
	if (r == 0)
		r = virtio_pci_create(vdev, &cfg, &vp);
	if (r < 0) {
		log_error("cannot create the %s device: %s", vdev->name, strerror(-r));
		vdev->ops->destroy(vdev);
		return r;
	}
	mv->nr_pci++;
	r = device_register(&mv->vm->devices, name, &virtio_pci_device_ops, vp);
	if (r < 0)
		return r;
	virtio_pci_device(vp)->devfn = slot ? PCI_DEVFN(slot, 0) : PCI_DEVFN_AUTO;
	r = pci_host_add_device(mv->vm->pci, virtio_pci_device(vp));
	if (r < 0) {
		log_error("cannot put %s on PCI bus 0%s: %s", vdev->name,
		          r == -EEXIST ? " at its slot" : "", strerror(-r));
		return r;
	}
	mv->mmio_next += VIRTIO_PCI_BAR_SIZE;
	log_info("%s at PCI 00:%02x.0, BAR0 0x%llx", vdev->name,
	         PCI_DEVFN_DEV(virtio_pci_device(vp)->devfn), (unsigned long long)cfg.bar_addr);
	return 0;
}

static int machine_create_disks(struct machine_virtio *mv)
{
	const struct vm_config *cfg = &mv->vm->cfg;

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		struct virtio_blk_params p = {
		    .path = cfg->disks[i].path,
		    .readonly = cfg->disks[i].readonly,
		    .engine = (enum disk_engine)cfg->disks[i].engine,
		    .serial = mv->serial[i],
		};
		struct virtio_blk *blk;
		char name[DEVICE_NAME_MAX];
		int r;

		snprintf(mv->serial[i], sizeof(mv->serial[i]), "nestvm-disk%u", i % VM_MAX_DISKS);
		snprintf(name, sizeof(name), "virtio-blk%u", i % VM_MAX_DISKS);
		r = virtio_blk_create(&p, &blk);
		if (r == 0)
			mv->disks[mv->nr_disks++] = virtio_blk_disk(blk);
		if (r == 0)
			r = machine_add_virtio(mv, virtio_blk_vdev(blk), name, cfg->disks[i].pci_slot);
		if (r < 0)
			return r;
	}
	return 0;
}

static int machine_create_vsock(struct machine_virtio *mv)
{
	const struct vm_config *cfg = &mv->vm->cfg;
	struct virtio_vsock_params p = {.guest_cid = cfg->vsock_cid, .socket = cfg->vsock_socket};
	struct virtio_vsock *vs;
	int r;

	/* The caller picks the path (`run`: a directory only this user controls). */
	if (!p.socket) {
		log_error("vsock: no host socket path");
		return -EINVAL;
	}
	r = virtio_vsock_create(&p, &vs);
	if (r == 0)
		r = machine_add_virtio(mv, virtio_vsock_vdev(vs), "virtio-vsock", cfg->vsock_pci_slot);
	if (r == 0)
		r = virtio_vsock_start(vs);
	if (r == 0)
		log_info("vsock: guest CID %u, host socket %s", p.guest_cid, p.socket);
	return r;
}

static int machine_create_console(struct machine_virtio *mv)
{
	const struct vm_config *cfg = &mv->vm->cfg;
	struct virtio_console_params p = {.console.socket = cfg->hvc_socket,
	                                  .nr_ports = cfg->nr_console_ports};
	struct virtio_console *con;
	int r;

	for (unsigned int i = 0; i < cfg->nr_console_ports; i++) {
		p.ports[i].name = cfg->console_ports[i].name;
		p.ports[i].socket = cfg->console_ports[i].socket;
	}
	r = virtio_console_create(&p, &con);
	if (r == 0)
		r = machine_add_virtio(mv, virtio_console_vdev(con), "virtio-console",
		                       cfg->console_pci_slot);
	if (r == 0)
		r = virtio_console_start(con);
	return r;
}

/*
 * Connect NIC @i to its switch: the port socket into *@fd (-1: no switch),
 * the switch's batch count into *@batch (netport.h); 0 or -errno.
 */
static int machine_nic_connect(const struct vm_config *cfg, unsigned int i, int *fd,
                               unsigned int *batch)
{
	const struct vm_nic_config *n = &cfg->nics[i];
	struct netport_hello h = {
	    .adapter = i,
	    .mac_spoofing = n->mac_spoofing,
	    .dhcp_guard = n->dhcp_guard,
	    .router_guard = n->router_guard,
	    .batch = NETPORT_BATCH_MAX,
	};
	unsigned int port = 0;
	char why[256];

	*fd = -1;
	*batch = 0;
	if (!n->switch_name)
		return 0;
	if (!cfg->switch_home || !cfg->vm_name) {
		log_error("NIC %u: no store to find switch '%s' in", i, n->switch_name);
		return -EINVAL;
	}
	snprintf(h.vm, sizeof(h.vm), "%s", cfg->vm_name);
	memcpy(h.mac, n->mac, sizeof(h.mac));
	*fd = switch_link_connect(cfg->switch_home, n->switch_name, &h, &port, why, sizeof(why));
	if (*fd < 0) {
		int r = *fd;

		log_error("NIC %u: cannot join %s", i, why);
		*fd = -1;
		return r;
	}
	*batch = h.batch;
	log_info("NIC %u: on port %u of switch '%s'%s", i, port, n->switch_name,
	         h.batch ? " (batches)" : "");
	return 0;
}

int machine_nics_connect(struct vm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_nics && i < VM_MAX_NICS; i++) {
		int r;

		if (cfg->nics[i].connected)
			continue;
		r = machine_nic_connect(cfg, i, &cfg->nics[i].fd, &cfg->nics[i].batch);
		if (r < 0)
			return r;
		cfg->nics[i].connected = true;
	}
	return 0;
}

static int machine_create_nics(struct machine_virtio *mv)
{
	const struct vm_config *cfg = &mv->vm->cfg;

	for (unsigned int i = 0; i < cfg->nr_nics && i < VM_MAX_NICS; i++) {
		struct virtio_net_params p = {0};
		struct virtio_net *net;
		char name[DEVICE_NAME_MAX];
		int fd = cfg->nics[i].fd, r = 0;
		unsigned int batch = cfg->nics[i].batch;

		if (!cfg->nics[i].connected)
			r = machine_nic_connect(cfg, i, &fd, &batch);

		if (r < 0)
			return r;
		snprintf(name, sizeof(name), "virtio-net%u", i);
		memcpy(p.mac, cfg->nics[i].mac, sizeof(p.mac));
		p.mtu = cfg->nics[i].mtu;
		p.fd = fd;
		p.batch = batch;
		p.name = name;
		r = virtio_net_create(&p, &net);
		if (r == 0)
			mv->nets[mv->nr_nets++] = net;
		if (r == 0)
			r = machine_add_virtio(mv, virtio_net_vdev(net), name,
			                       cfg->nics[i].pci_slot);
		if (r == 0)
			r = virtio_net_start(net);
		if (r < 0)
			return r;
	}
	return 0;
}

int machine_create_virtio(struct vm *vm)
{
	struct machine_virtio *mv;
	int r;

	if (!vm->cfg.nr_disks && !vm->cfg.rng && !vm->cfg.vsock_cid && !vm->cfg.hvc_socket &&
	    !vm->cfg.nr_console_ports && !vm->cfg.nr_nics)
		return 0;
	if (!kvm_check_cap(vm->fd, KVM_CAP_SIGNAL_MSI)) {
		log_error("this KVM cannot inject MSIs (no KVM_CAP_SIGNAL_MSI): no virtio devices");
		return -ENOTSUP;
	}
	mv = calloc(1, sizeof(*mv));
	if (!mv)
		return -ENOMEM;
	mv->vm = vm;
	mv->mmio_next = LAYOUT_PCI_MMIO32;
	mv->ioeventfd = kvm_check_cap(vm->fd, KVM_CAP_IOEVENTFD) > 0;
	vm->virtio = mv;
	r = machine_create_disks(mv);
	if (r == 0 && vm->cfg.rng) {
		struct virtio_rng *rng;

		r = virtio_rng_create(&rng);
		if (r == 0)
			r = machine_add_virtio(mv, virtio_rng_vdev(rng), "virtio-rng",
			                       vm->cfg.rng_pci_slot);
	}
	if (r == 0 && vm->cfg.vsock_cid)
		r = machine_create_vsock(mv);
	if (r == 0 && (vm->cfg.hvc_socket || vm->cfg.nr_console_ports))
		r = machine_create_console(mv);
	if (r == 0)
		r = machine_create_nics(mv);
	return r;
}

/* The virtio functions still in vm->devices (none once the list is destroyed). */
static struct virtio_pci *machine_virtio_at(struct vm *vm, unsigned int i)
{
	struct device *d = &vm->devices.devs[i];

	return d->ops == &virtio_pci_device_ops ? d->dev : NULL;
}

int machine_disks_lock(struct vm *vm, bool take)
{
	int r = 0;

	for (unsigned int i = 0; vm->virtio && i < vm->virtio->nr_disks; i++) {
		int e = disk_lock(vm->virtio->disks[i], take);

		if (e < 0 && r == 0)
			r = e;
	}
	return r;
}

int machine_nic_attach(struct vm *vm, unsigned int i, int fd)
{
	if (!vm->virtio || i >= vm->virtio->nr_nets)
		return -ENOENT;
	virtio_net_attach(vm->virtio->nets[i], fd);
	return 0;
}

int machine_nic_stats(struct vm *vm, unsigned int i, struct virtio_net_stats *out)
{
	/* The NICs live as long as vm->virtio (machine_destroy_virtio() frees both). */
	if (!vm->virtio || i >= vm->virtio->nr_nets)
		return -ENOENT;
	virtio_net_get_stats(vm->virtio->nets[i], out);
	return 0;
}

void machine_stop_virtio(struct vm *vm)
{
	/* Each stop also closes its disk image, releasing the lock now (ops->stop). */
	for (unsigned int i = 0; i < vm->devices.nr; i++)
		virtio_pci_stop(machine_virtio_at(vm, i));
}

void machine_destroy_virtio(struct vm *vm)
{
	/*
	 * Destroyed here, last created first, when the machine goes before
	 * the list; their entries keep a NULL device, which
	 * device_list_destroy() then destroys as a no-op.
	 */
	for (unsigned int i = vm->devices.nr; i-- > 0;) {
		struct virtio_pci *vp = machine_virtio_at(vm, i);

		if (vp) {
			virtio_pci_device_ops.destroy(vp);
			vm->devices.devs[i].dev = NULL;
		}
	}
	free(vm->virtio);
	vm->virtio = NULL;
}
