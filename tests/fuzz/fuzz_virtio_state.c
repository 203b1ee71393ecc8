/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the saved state of each virtio device, as
 * virtio_pci_restore() (devices/virtio/virtio_pci_state.c) and the models'
 * ops->restore read it from a snapshot file. The first byte picks the
 * device (bits 0-1: virtio-blk, virtio-rng, virtio-console, virtio-vsock)
 * and how the rest is used (bit 7 clear: as the state itself; set: XORed
 * over a real saved state of that device, taken at start-up, so that the
 * fuzzer reaches the fields behind the identity and configuration space
 * checks; bytes past its end are appended).
 *
 * Each device lives from input to input on its own transport; every
 * restore goes into it with the guest "not running" (the transport's
 * guest_running says no), so nothing runs on the restored state before
 * the checks below.
 *
 * Checks, besides ASan/UBSan: a refused state says why and leaves a device
 * that can still be quiesced and saved; an accepted one used up every byte,
 * and saving it, restoring that and saving again gives the same bytes.
 * Then the guest "runs": the device looks at the restored queues (rings
 * wherever the state says, in a guest memory shared by all four) and must
 * survive them.
 */
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "fuzz_virtio.h"

#include <fcntl.h>
#include <signal.h>

#define NR_DEVS 4
#define QSIZE 16
#define DISK_SIZE (64 * 1024)
#define MAX_STATE (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DEV_BLK, DEV_RNG, DEV_CONSOLE, DEV_VSOCK };

static struct fz slots[NR_DEVS];
static struct dev_state tmpl[NR_DEVS]; /* a real saved state of each */

static struct virtio_device *create_blk(const char *dir)
{
	char path[512];
	struct virtio_blk_params p = {.path = path, .engine = DISK_ENGINE_THREADS};
	struct virtio_blk *blk;
	int fd;

	snprintf(path, sizeof(path), "%s/disk.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0 && ftruncate(fd, DISK_SIZE) == 0);
	close(fd);
	FZ_CHECK(virtio_blk_create(&p, &blk) == 0);
	return virtio_blk_vdev(blk);
}

static struct virtio_device *create_console(const char *dir)
{
	static char con_path[300], port_path[300];
	struct virtio_console_params p = {
	    .console = {.socket = con_path},
	    .ports = {{.name = "alpha", .socket = port_path}, {.name = "beta"}},
	    .nr_ports = 2,
	};
	struct virtio_console *con;

	snprintf(con_path, sizeof(con_path), "%s/console", dir);
	snprintf(port_path, sizeof(port_path), "%s/alpha", dir);
	FZ_CHECK(virtio_console_create(&p, &con) == 0);
	return virtio_console_vdev(con);
}

static struct virtio_device *create_vsock(const char *dir)
{
	static char path[300];
	struct virtio_vsock_params p = {.guest_cid = 3, .socket = path};
	struct virtio_vsock *vs;

	snprintf(path, sizeof(path), "%s/v", dir);
	FZ_CHECK(virtio_vsock_create(&p, &vs) == 0);
	return virtio_vsock_vdev(vs);
}

/* Quiesce and save @f's device into @out (zeroed); the device stays quiesced. */
static void save_quiesced(struct fz *f, struct dev_state *out)
{
	FZ_CHECK(virtio_pci_quiesce(f->vp) == 0);
	FZ_CHECK(virtio_pci_save(f->vp, out) == 0 && out->error == 0);
}

static void setup_once(void)
{
	const char *dir = fz_tmpdir("state");
	struct virtio_device *vdev[NR_DEVS];
	struct virtio_rng *rng;

	log_set_level(LOG_NONE);
	signal(SIGPIPE, SIG_IGN);
	vdev[DEV_BLK] = create_blk(dir);
	FZ_CHECK(virtio_rng_create(&rng) == 0);
	vdev[DEV_RNG] = virtio_rng_vdev(rng);
	vdev[DEV_CONSOLE] = create_console(dir);
	vdev[DEV_VSOCK] = create_vsock(dir);
	for (unsigned int k = 0; k < NR_DEVS; k++) {
		struct fz *f = &slots[k];

		fz_create(f, vdev[k]);
		FZ_CHECK(fz_bring_up(f, vdev[k]->features, vdev[k]->nr_queues, QSIZE));
		fz_settle(f);
		save_quiesced(f, &tmpl[k]);
		virtio_pci_resume(f->vp);
	}
}

/* The state to restore: the input itself, or the input XORed over the template. */
static size_t make_state(unsigned int k, bool overlay, const uint8_t *p, size_t n, uint8_t *out)
{
	size_t len;

	if (!overlay) {
		memcpy(out, p, n);
		return n;
	}
	len = tmpl[k].len > n ? tmpl[k].len : n;
	memcpy(out, tmpl[k].buf, tmpl[k].len);
	for (size_t i = 0; i < n; i++)
		out[i] = i < tmpl[k].len ? out[i] ^ p[i] : p[i];
	return len;
}

/* Restore @len bytes into @f's device as device_list_restore() would. */
static int restore(struct fz *f, const uint8_t *buf, size_t len, char *why, size_t why_len)
{
	struct dev_state_in in;
	int r;

	dsi_init(&in, buf, len);
	r = virtio_pci_restore(f->vp, &in, VIRTIO_PCI_STATE_VERSION);
	if (r == 0)
		FZ_CHECK(dsi_finish(&in) == 0); /* an accepted state is used up */
	snprintf(why, why_len, "%s", in.why);
	return r;
}

/* A restored state saves, restores and saves again to the same bytes. */
static void check_round_trip(struct fz *f)
{
	struct dev_state a = {0}, b = {0};
	char why[160];

	save_quiesced(f, &a);
	virtio_pci_resume(f->vp);
	if (restore(f, a.buf, a.len, why, sizeof(why)) != 0) {
		fprintf(stderr, "a saved state is refused: %s\n", why);
		abort();
	}
	save_quiesced(f, &b);
	virtio_pci_resume(f->vp);
	FZ_CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
	ds_release(&a);
	ds_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	static uint8_t buf[MAX_STATE + 4096];
	struct dev_state check = {0};
	unsigned int k;
	struct fz *f;
	char why[160];
	size_t len;

	if (!init) {
		setup_once();
		init = true;
	}
	if (size == 0 || size - 1 > MAX_STATE)
		return 0;
	k = data[0] % NR_DEVS;
	f = &slots[k];
	len = make_state(k, data[0] & 0x80, data + 1, size - 1, buf);
	__atomic_store_n(&f->guest_stopped, true, __ATOMIC_RELEASE);
	if (restore(f, buf, len, why, sizeof(why)) != 0) {
		/* Refused: with a reason, and the device is whole. */
		FZ_CHECK(why[0] != 0);
		save_quiesced(f, &check);
		virtio_pci_resume(f->vp);
		ds_release(&check);
		__atomic_store_n(&f->guest_stopped, false, __ATOMIC_RELEASE);
		return 0;
	}
	check_round_trip(f);
	/* The guest runs: the device takes up the restored queues, whatever they hold. */
	__atomic_store_n(&f->guest_stopped, false, __ATOMIC_RELEASE);
	fz_settle(f);
	return 0;
}
