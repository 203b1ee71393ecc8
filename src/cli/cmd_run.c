/* SPDX-License-Identifier: MIT */
/* `nestvm run`: one VM in the foreground. */
#include "arch/x86/acpi.h"
#include "cli/cli.h"
#include "cli/opts_virtio.h"
#include "core/exit_status.h"
#include "core/log.h"
#include "core/sandbox.h"
#include "core/vm.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RUN_MIN_MEMORY (16ULL << 20)
#define RUN_MAX_CPUS ACPI_MAX_CPUS

static const char run_usage[] =
	"usage: nestvm run --kernel PATH [options]\n"
	"\n"
	"Boot a kernel (Linux bzImage, or an ELF vmlinux with a PVH entry) in a new VM\n"
	"and run it in the foreground until the guest powers off.\n"
	"\n"
	"  --kernel PATH        kernel image (required)\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STRING     kernel command line\n"
	"  --cpus N             number of vCPUs (default 1)\n"
	"  --memory SIZE        guest RAM, e.g. 512M, 4G; a bare number is MiB (default 512M)\n"
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
	"                       /tmp/nestvm-vsock-CID.sock), guests reach PATH_PORT\n"
	"  --virtio-console PATH\n"
	"                       a second console (the guest's hvc0) on UNIX socket PATH\n"
	"  --console-port NAME,socket=PATH\n"
	"                       a named virtio-console port on UNIX socket PATH (up to 8)\n"
	"  --sandbox on|off     seccomp filters on the monitor's threads (default on; off\n"
	"                       only for debugging)\n"
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

static uint64_t run_host_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

int cmd_run(int argc, char **argv)
{
	enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_NESTED,
	       OPT_CONSOLE, OPT_HUGEPAGES, OPT_KVM, OPT_PIT, OPT_DISK, OPT_RNG,
	       OPT_VSOCK, OPT_VIRTIO_CONSOLE, OPT_CONSOLE_PORT, OPT_SANDBOX };
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
		{"sandbox", required_argument, NULL, OPT_SANDBOX},
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
	uint64_t host_mem = run_host_memory();
	const char *memory_arg = "";
	unsigned long n;
	int opt, flag, verbose = 0, sandbox = 1, r;
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
			if (cli_parse_uint(optarg, 1, RUN_MAX_CPUS, &n) < 0)
				return run_usage_error("--cpus '%s': give a number from 1 to 254",
						       optarg);
			cfg.cpus = n;
			break;
		case OPT_MEMORY:
			memory_arg = optarg;
			if (cli_parse_size(optarg, &cfg.memory) < 0)
				return run_usage_error("--memory '%s': give a size like 512M or 4G",
						       optarg);
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
		case OPT_SANDBOX:
			if (cli_parse_on_off(optarg, &sandbox) < 0)
				return run_usage_error("--sandbox '%s': give on or off", optarg);
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
	if (cfg.memory < RUN_MIN_MEMORY)
		return run_usage_error("--memory %s is too small; a VM needs at least 16M",
				       memory_arg);
	if (host_mem && cfg.memory > host_mem) {
		fprintf(stderr, "nestvm run: --memory %s is more than this host's %llu MiB\n",
			memory_arg, (unsigned long long)(host_mem >> 20));
		return NESTVM_EXIT_USAGE;
	}
	log_set_level(verbose >= 2 ? LOG_DEBUG : verbose ? LOG_INFO : LOG_WARN);
	/* Before vm_create() starts the first device thread. */
	if (sandbox_init(sandbox) < 0)
		return NESTVM_EXIT_ERROR;

	r = vm_create(&cfg, &vm);
	if (r < 0)
		return NESTVM_EXIT_ERROR;
	r = vm_run(vm);
	vm_destroy_at_exit(vm);
	return r;
}
