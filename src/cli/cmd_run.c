/* SPDX-License-Identifier: MIT */
/* `nestvm run`: one VM in the foreground. */
#include "arch/x86/acpi.h"
#include "cli/cli.h"
#include "cli/opts_virtio.h"
#include "core/exit_status.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/vm.h"
#include "core/vm_limits.h"
#include "manager/store.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


_Static_assert(VM_MAX_CPUS == ACPI_MAX_CPUS, "the vCPU limit is the MADT's");

static const char run_usage[] =
	"usage: nestvm run --kernel PATH [options]\n"
	"\n"
	"Boot a kernel (Linux bzImage, or an ELF vmlinux with a PVH entry) in a new VM\n"
	"and run it in the foreground until the guest powers off.\n"
	"\n"
	"  --kernel PATH        kernel image (required)\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STRING     kernel command line\n"
	"  --cpus N             number of vCPUs, 1 to 254 (default 1)\n"
	"  --memory SIZE        guest RAM, whole MiB: 512M, 4G; a bare number is MiB (default 512M)\n"
	"  --nested on|off      expose AMD-V/VT-x to the guest (default off)\n"
	"  --console WHERE      serial console: stdio (default), none, file:PATH\n"
	"  --hugepages on|off   back guest RAM with transparent huge pages (default on)\n"
	"  --pit on|off         in-kernel i8254 timer (default on; Linux on KVM runs without)\n"
	"  --kvm PATH           KVM device (default /dev/kvm)\n"
	"  --disk PATH[,readonly][,io=uring|threads]\n"
	"                       raw disk image as a virtio-blk device (repeatable, up to 8)\n"
	"  --rng                virtio-rng entropy device (from the host's getrandom)\n"
	"  --vsock CID[,socket=PATH]\n"
	"                       virtio-vsock with guest CID (3 or more); host programs reach the\n"
	"                       guest through the UNIX socket PATH (default\n"
	"                       $XDG_RUNTIME_DIR/nestvm/vsock-CID.sock, else\n"
	"                       .run/vsock-CID.sock in the VM store), guests reach PATH_PORT\n"
	"                       (a socket of this user only)\n"
	"  --virtio-console PATH\n"
	"                       a second console (the guest's hvc0) on UNIX socket PATH\n"
	"  --console-port NAME,socket=PATH\n"
	"                       a named virtio-console port on UNIX socket PATH (up to 8)\n"
	"  -v, --verbose        say what the monitor does; twice for debug output\n"
	"\n"
	"Exit status: 0 guest powered off, 1 error, 2 usage, 3 guest reset, 4 guest\n"
	"crashed (triple fault), 128+N killed by signal N; a value the guest writes to\n"
	"the debug-exit port 0xf4 is returned as is.\n";

static int run_usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "nestvm run: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return NESTVM_EXIT_USAGE;
}

/*
 * The default host socket of --vsock CID: in $XDG_RUNTIME_DIR/nestvm, else in
 * .run in the VM store (NESTVM_HOME or its default, as `new` would use), both
 * directories only this user controls; never in /tmp, where anyone could take
 * the name first or listen on PATH_PORT. Returns 0 or -errno, having said why.
 */
static int run_default_vsock_path(uint32_t cid, char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[STORE_PATH_MAX];
	struct mgr_err err;
	struct store st;
	int n, r;

	if (xdg && xdg[0] == '/') {
		n = snprintf(dir, sizeof(dir), "%s/nestvm", xdg);
	} else {
		r = store_open(&st, NULL, &err);
		if (r < 0) {
			fprintf(stderr, "nestvm run: --vsock: %s; or give socket=PATH\n", err.msg);
			return r;
		}
		n = snprintf(dir, sizeof(dir), "%s/.run", st.home);
	}
	r = n < 0 || (size_t)n >= sizeof(dir) ? -ENAMETOOLONG : fs_private_dir(dir);
	if (r < 0) {
		fprintf(stderr,
		        "nestvm run: --vsock: cannot use '%s' for its socket: %s; give socket=PATH\n",
		        dir, r == -EPERM ? "another user could write to it" : fs_strerror(r));
		return r;
	}
	n = snprintf(buf, len, "%s/vsock-%u.sock", dir, cid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A --cpus or --memory value judged by core/vm_limits.h, as `new` and vm.json are. */
static int run_limits_error(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "nestvm run: %s '%s': %s\n", opt, arg, why);
	return NESTVM_EXIT_USAGE;
}

int cmd_run(int argc, char **argv)
{
	enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_NESTED,
	       OPT_CONSOLE, OPT_HUGEPAGES, OPT_KVM, OPT_PIT, OPT_DISK, OPT_RNG,
	       OPT_VSOCK, OPT_VIRTIO_CONSOLE, OPT_CONSOLE_PORT };
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, OPT_KERNEL},
		{"initrd", required_argument, NULL, OPT_INITRD},
		{"cmdline", required_argument, NULL, OPT_CMDLINE},
		{"cpus", required_argument, NULL, OPT_CPUS},
		{"memory", required_argument, NULL, OPT_MEMORY},
		{"nested", required_argument, NULL, OPT_NESTED},
		{"console", required_argument, NULL, OPT_CONSOLE},
		{"hugepages", required_argument, NULL, OPT_HUGEPAGES},
		{"kvm", required_argument, NULL, OPT_KVM},
		{"pit", required_argument, NULL, OPT_PIT},
		{"disk", required_argument, NULL, OPT_DISK},
		{"rng", no_argument, NULL, OPT_RNG},
		{"vsock", required_argument, NULL, OPT_VSOCK},
		{"virtio-console", required_argument, NULL, OPT_VIRTIO_CONSOLE},
		{"console-port", required_argument, NULL, OPT_CONSOLE_PORT},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vm_config cfg = {
		.cpus = 1,
		.memory = 512ULL << 20,
		.hugepages = true,
		.pit = true,
		.console = VM_CONSOLE_STDIO,
		.kvm_path = "/dev/kvm",
	};
	char vsock_path[STORE_PATH_MAX];
	char why[VM_LIMITS_WHY_LEN];
	uint64_t mib;
	int opt, flag, verbose = 0, r;
	struct vm *vm;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL:
			cfg.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg.initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case OPT_CPUS:
			if (vm_limits_parse_cpus(optarg, &cfg.cpus, why, sizeof(why)) < 0)
				return run_limits_error("--cpus", optarg, why);
			break;
		case OPT_MEMORY:
			if (vm_limits_parse_memory(optarg, &mib, why, sizeof(why)) < 0)
				return run_limits_error("--memory", optarg, why);
			cfg.memory = mib << 20;
			break;
		case OPT_NESTED:
			if (cli_parse_on_off(optarg, &flag) < 0)
				return run_usage_error("--nested '%s': give on or off", optarg);
			cfg.nested = flag;
			break;
		case OPT_HUGEPAGES:
			if (cli_parse_on_off(optarg, &flag) < 0)
				return run_usage_error("--hugepages '%s': give on or off", optarg);
			cfg.hugepages = flag;
			break;
		case OPT_PIT:
			if (cli_parse_on_off(optarg, &flag) < 0)
				return run_usage_error("--pit '%s': give on or off", optarg);
			cfg.pit = flag;
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "stdio")) {
				cfg.console = VM_CONSOLE_STDIO;
			} else if (!strcmp(optarg, "none")) {
				cfg.console = VM_CONSOLE_NONE;
			} else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
				cfg.console = VM_CONSOLE_FILE;
				cfg.console_path = optarg + 5;
			} else {
				return run_usage_error(
					"--console '%s': give stdio, none or file:PATH", optarg);
			}
			break;
		case OPT_KVM:
			cfg.kvm_path = optarg;
			break;
		case OPT_DISK:
			if (cfg.nr_disks == VM_MAX_DISKS)
				return run_usage_error("--disk '%s': at most 8 disks", optarg);
			if (cli_parse_disk(optarg, &cfg.disks[cfg.nr_disks]) < 0)
				return run_usage_error(
					"--disk '%s': give PATH[,readonly][,io=uring|threads]", optarg);
			cfg.nr_disks++;
			break;
		case OPT_RNG:
			cfg.rng = true;
			break;
		case OPT_VSOCK:
			if (cli_parse_vsock(optarg, &cfg.vsock_cid, &cfg.vsock_socket) < 0)
				return run_usage_error(
					"--vsock '%s': give CID[,socket=PATH], CID from 3 to 4294967294",
					optarg);
			break;
		case OPT_VIRTIO_CONSOLE:
			cfg.hvc_socket = optarg;
			break;
		case OPT_CONSOLE_PORT:
			if (cfg.nr_console_ports == VM_MAX_CONSOLE_PORTS)
				return run_usage_error("--console-port '%s': at most 8 ports", optarg);
			if (cli_parse_console_port(optarg,
						   &cfg.console_ports[cfg.nr_console_ports]) < 0)
				return run_usage_error(
					"--console-port '%s': give NAME,socket=PATH", optarg);
			cfg.nr_console_ports++;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return run_usage_error("unknown or incomplete option '%s'; see --help",
					       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return run_usage_error("unexpected argument '%s'; see --help", argv[optind]);
	if (!cfg.kernel)
		return run_usage_error("%s", "--kernel PATH is required; see --help");
	log_set_level(verbose >= 2 ? LOG_DEBUG : verbose ? LOG_INFO : LOG_WARN);
	if (cfg.vsock_cid && !cfg.vsock_socket) {
		if (run_default_vsock_path(cfg.vsock_cid, vsock_path, sizeof(vsock_path)) < 0)
			return NESTVM_EXIT_ERROR;
		cfg.vsock_socket = vsock_path;
	}

	r = vm_create(&cfg, &vm);
	if (r < 0)
		return NESTVM_EXIT_ERROR;
	r = vm_run(vm);
	vm_destroy_at_exit(vm);
	return r;
}
