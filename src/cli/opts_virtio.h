/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CLI_OPTS_VIRTIO_H
#define NESTVM_CLI_OPTS_VIRTIO_H

#include "core/vm.h"
#include "manager/vm_def.h"

#include <getopt.h>

/*
 * The options that say what a VM is, one parser for `nestvm run`, `new` and
 * `set`, so that each means the same everywhere: each option is applied to
 * a struct vm_def (manager/vm_def.h), which vm_def_validate() then judges
 * as it judges vm.json. A command opens its getopt_long() table with
 * CLI_DEF_OPTIONS (set lists the rows it takes) and hands every CLI_DEF_*
 * value to cli_def_option().
 */
enum cli_def_opt {
	CLI_DEF_KERNEL = 0x100,
	CLI_DEF_INITRD,
	CLI_DEF_CMDLINE,
	CLI_DEF_CPUS,
	CLI_DEF_MEMORY,
	CLI_DEF_NESTED,
	CLI_DEF_HUGEPAGES,
	CLI_DEF_PIT,
	CLI_DEF_CPU_AFFINITY,
	CLI_DEF_DISK,
	CLI_DEF_RNG,
	CLI_DEF_VSOCK,
	CLI_DEF_VIRTIO_CONSOLE,
	CLI_DEF_CONSOLE_PORT,
	CLI_DEF_NIC,
	CLI_DEF_END
};

/* clang-format off */
#define CLI_DEF_OPTIONS							\
	{"kernel", required_argument, NULL, CLI_DEF_KERNEL},		\
	{"initrd", required_argument, NULL, CLI_DEF_INITRD},		\
	{"cmdline", required_argument, NULL, CLI_DEF_CMDLINE},		\
	{"cpus", required_argument, NULL, CLI_DEF_CPUS},		\
	{"memory", required_argument, NULL, CLI_DEF_MEMORY},		\
	{"nested", required_argument, NULL, CLI_DEF_NESTED},		\
	{"hugepages", required_argument, NULL, CLI_DEF_HUGEPAGES},	\
	{"pit", required_argument, NULL, CLI_DEF_PIT},			\
	{"cpu-affinity", required_argument, NULL, CLI_DEF_CPU_AFFINITY}, \
	{"disk", required_argument, NULL, CLI_DEF_DISK},		\
	{"rng", no_argument, NULL, CLI_DEF_RNG},			\
	{"vsock", required_argument, NULL, CLI_DEF_VSOCK},		\
	{"virtio-console", required_argument, NULL, CLI_DEF_VIRTIO_CONSOLE}, \
	{"console-port", required_argument, NULL, CLI_DEF_CONSOLE_PORT}, \
	{"nic", required_argument, NULL, CLI_DEF_NIC}

/* The help text of CLI_DEF_OPTIONS but --kernel, for the commands' usage. */
#define CLI_DEF_OPTIONS_HELP \
	"  --initrd PATH        initial ramdisk\n" \
	"  --cmdline STRING     kernel command line\n" \
	"  --cpus N             vCPUs, 1 to 254 (default 1)\n" \
	"  --memory SIZE        guest RAM, whole MiB: 512M, 4G; a bare number is MiB\n" \
	"                       (default 512M)\n" \
	"  --nested on|off      expose AMD-V/VT-x to the guest (default off)\n" \
	"  --hugepages on|off   back guest RAM with transparent huge pages (default on)\n" \
	"  --pit on|off         in-kernel i8254 timer (default on; Linux on KVM runs without)\n" \
	"  --cpu-affinity LIST  run the VM's vCPU and device threads on these host CPUs,\n" \
	"                       as taskset -c takes them: 1, 0-3,6 (default: any)\n" \
	"  --disk PATH[,readonly][,io=auto|uring|threads]\n" \
	"                       raw disk image as a virtio-blk device (repeatable, up to 8;\n" \
	"                       a comma in PATH is written ,,)\n" \
	"  --rng                virtio-rng entropy device (from the host's getrandom)\n" \
	"  --vsock CID[,socket=PATH]\n" \
	"                       virtio-vsock with guest CID (3 or more); host programs reach\n" \
	"                       the guest through the UNIX socket PATH, guests reach PATH_PORT\n" \
	"  --virtio-console PATH\n" \
	"                       a second console (the guest's hvc0) on UNIX socket PATH\n" \
	"  --console-port NAME,socket=PATH\n" \
	"                       a named virtio-console port on UNIX socket PATH (up to 8)\n" \
	"  --nic switch=NAME[,mac=MAC][,mtu=N][,mac-spoofing=on|off][,dhcp-guard=on|off]\n" \
	"        [,router-guard=on|off]\n" \
	"                       a virtio-net adapter on a port of switch NAME (up to 8);\n" \
	"                       MAC defaults to one derived from the VM's name, MTU to 1500\n" \
	"                       (68 to 65520); spoofing off, the guards on by default\n"
/* clang-format on */

/* cli_def_option() flags. */
#define CLI_DEF_RESOLVE 0x1u /* --kernel, --initrd, --disk: an existing file, made canonical */

/*
 * cli_def_option - apply option @opt (a CLI_DEF_* value) with its argument
 * @arg (NULL for --rng, which also takes on|off) to @def, as `run`, `new` and
 * `set` all do: sizes judged by core/vm_limits.h, paths made absolute
 * (relative to the working directory; with CLI_DEF_RESOLVE the file must
 * exist, as a regular file or a block device, and symbolic links are
 * resolved), a disk or port added at the end without a PCI slot yet
 * (vm_def_assign_slots()), the same disk image or port name refused twice.
 * Returns 0, -EINVAL with "--disk 'ARG': why" in @err, or -ENOMEM.
 */
int cli_def_option(struct vm_def *def, int opt, const char *arg, unsigned int flags,
                   struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * The syntax of the virtio device options, under cli_def_option(). Words are
 * separated by single commas; ",," stands for a comma inside a word (as in
 * QEMU), so a path may hold commas: "a,,b.img,ro" is the disk "a,b.img", read-only.
 * Each splits its argument in place, so the strings it stores point into
 * @arg, which must outlive the configuration (argv does); on an error @arg
 * is left as it was given, for the message. -ENOMEM if a copy fails.
 */

/*
 * cli_parse_disk - "PATH[,readonly][,io=auto|uring|threads]" (--disk) into
 * @out. Returns 0 or -EINVAL (empty path, unknown word).
 */
int cli_parse_disk(char *arg, struct vm_disk_config *out) __attribute__((warn_unused_result));

/*
 * cli_parse_vsock - "CID[,socket=PATH]" (--vsock): a guest CID from 3 to
 * 0xfffffffe, and the host-side socket. Returns 0 or -EINVAL.
 */
int cli_parse_vsock(char *arg, uint32_t *cid, const char **socket)
    __attribute__((warn_unused_result));

/*
 * cli_parse_console_port - "NAME,socket=PATH" (--console-port): a named
 * virtio-console port, NAME 1 to 64 bytes. Returns 0 or -EINVAL.
 */
int cli_parse_console_port(char *arg, struct vm_console_port *out)
    __attribute__((warn_unused_result));

/* What --nic says, before it goes into a definition. */
struct cli_nic {
	const char *switch_name;
	const char *mac; /* NULL: derived */
	const char *mtu; /* NULL: the default */
	bool mac_spoofing, dhcp_guard, router_guard;
};

/*
 * cli_parse_nic - "switch=NAME[,mac=MAC][,mtu=N][,mac-spoofing=on|off]
 * [,dhcp-guard=on|off][,router-guard=on|off]" (--nic). Returns 0 or
 * -EINVAL (no switch, an unknown word or value).
 */
int cli_parse_nic(char *arg, struct cli_nic *out) __attribute__((warn_unused_result));

#endif
