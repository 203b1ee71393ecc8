// SPDX-License-Identifier: MIT
/* An internal switch's uplink: a tap device on the host (uplink.h). */
#include "switch/uplink.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void tap_sin(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
}

/* The host's address on the tap and the netmask (if it has a subnet), up; the MAC read back. */
static int tap_configure(const struct switch_def *d, uint8_t mac[6], char *why, size_t why_size)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;
	const char *step = "socket";

	if (s < 0)
		goto fail;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", d->tap);
	/* Without a subnet the tap stays a bare link, for a bridge to take. */
	if (d->net) {
		step = "set its address (SIOCSIFADDR)";
		tap_sin(&ifr.ifr_addr, switch_addr(d, 1));
		if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
			goto fail;
		step = "set its netmask (SIOCSIFNETMASK)";
		tap_sin(&ifr.ifr_netmask, ~0u << (32 - d->prefix));
		if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
			goto fail;
	}
	step = "read its flags (SIOCGIFFLAGS)";
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	step = "bring it up (SIOCSIFFLAGS)";
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		goto fail;
	step = "read its MAC (SIOCGIFHWADDR)";
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		goto fail;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
	return 0;
fail:
	r = -errno;
	snprintf(why, why_size, "tap device '%s': cannot %s: %s", d->tap, step, strerror(errno));
	if (s >= 0)
		close(s);
	return r;
}

int switch_tap_open(const struct switch_def *d, uint8_t mac[6], char *why, size_t why_size)
{
	struct ifreq ifr;
	int fd, r;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_size,
		         errno == ENOENT
		             ? "an internal switch needs /dev/net/tun, which this host "
		               "lacks (modprobe tun; in a container, pass the device in)"
		         : errno == EACCES || errno == EPERM
		             ? "an internal switch needs to open /dev/net/tun: permission denied "
		               "(run the switch as root, or with CAP_NET_ADMIN and access to the "
		               "device)"
		             : "cannot open /dev/net/tun: %s",
		         strerror(errno));
		return r;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", d->tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		if (errno == EPERM)
			snprintf(
			    why, why_size,
			    "an internal switch creates tap device '%s' for the host, which needs "
			    "CAP_NET_ADMIN: this process lacks it (start the switch as root: "
			    "'sudo nestvm switch start NAME', or give the nestvm binary "
			    "cap_net_admin: 'sudo setcap cap_net_admin+ep $(which nestvm)')",
			    d->tap);
		else if (errno == EBUSY)
			snprintf(why, why_size, "tap device '%s' is in use by another program",
			         d->tap);
		else
			snprintf(why, why_size, "cannot create tap device '%s' (TUNSETIFF): %s",
			         d->tap, strerror(errno));
		close(fd);
		return r;
	}
	r = tap_configure(d, mac, why, why_size);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}
