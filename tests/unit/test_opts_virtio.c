/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the option parsers `nestvm run`, `new` and `set` share: the
 * syntax of --disk, --vsock and --console-port, and cli_def_option(), which
 * applies every option that says what a VM is to a struct vm_def.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backends/disk.h"
#include "cli/opts_virtio.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_disk(void **state)
{
	struct vm_disk_config d;
	char a[] = "/img/root.raw", b[] = "disk.img,readonly,io=threads", c[] = "x,ro,io=uring";

	(void)state;
	assert_int_equal(cli_parse_disk(a, &d), 0);
	assert_string_equal(d.path, "/img/root.raw");
	assert_false(d.readonly);
	assert_int_equal(d.engine, DISK_ENGINE_AUTO);
	assert_int_equal(cli_parse_disk(b, &d), 0);
	assert_string_equal(d.path, "disk.img");
	assert_true(d.readonly);
	assert_int_equal(d.engine, DISK_ENGINE_THREADS);
	assert_int_equal(cli_parse_disk(c, &d), 0);
	assert_int_equal(d.engine, DISK_ENGINE_URING);
}

static void test_disk_errors(void **state)
{
	char a[] = "", b[] = ",readonly", c[] = "disk.img,readwrite", d[] = "disk.img,io=aio";
	struct vm_disk_config cfg;

	(void)state;
	assert_int_equal(cli_parse_disk(a, &cfg), -EINVAL);
	assert_int_equal(cli_parse_disk(b, &cfg), -EINVAL);
	assert_int_equal(cli_parse_disk(c, &cfg), -EINVAL);
	/* The argument is left whole for the error message. */
	assert_string_equal(c, "disk.img,readwrite");
	assert_int_equal(cli_parse_disk(d, &cfg), -EINVAL);
	assert_string_equal(d, "disk.img,io=aio");
}

/* ",," is a literal comma (issue 9, row 11): a path with commas can be given. */
static void test_disk_comma_escape(void **state)
{
	char a[] = "/img/a,,b.raw", b[] = "/img/a,,b,,c.raw,ro,io=threads", c[] = "x,,,ro",
	     d[] = ",,lead.img", e[] = "a,,b.img,bogus", f[] = "p,", g[] = "s,,";
	struct vm_disk_config cfg;

	(void)state;
	assert_int_equal(cli_parse_disk(a, &cfg), 0);
	assert_string_equal(cfg.path, "/img/a,b.raw");
	assert_false(cfg.readonly);
	assert_int_equal(cli_parse_disk(b, &cfg), 0);
	assert_string_equal(cfg.path, "/img/a,b,c.raw");
	assert_true(cfg.readonly);
	assert_int_equal(cfg.engine, DISK_ENGINE_THREADS);
	assert_int_equal(cli_parse_disk(c, &cfg), 0); /* "x," then ",ro" */
	assert_string_equal(cfg.path, "x,");
	assert_true(cfg.readonly);
	assert_int_equal(cli_parse_disk(d, &cfg), 0);
	assert_string_equal(cfg.path, ",lead.img");
	assert_int_equal(cli_parse_disk(e, &cfg), -EINVAL);
	assert_string_equal(e, "a,,b.img,bogus");           /* left as given */
	assert_int_equal(cli_parse_disk(f, &cfg), -EINVAL); /* an empty word */
	assert_string_equal(f, "p,");
	assert_int_equal(cli_parse_disk(g, &cfg), 0);
	assert_string_equal(cfg.path, "s,");
}

static void test_socket_comma_escape(void **state)
{
	char a[] = "7,socket=/run/v,,m.sock", b[] = "port1,socket=/run/p,,1.sock";
	struct vm_console_port p;
	const char *sock;
	uint32_t cid;

	(void)state;
	assert_int_equal(cli_parse_vsock(a, &cid, &sock), 0);
	assert_int_equal(cid, 7);
	assert_string_equal(sock, "/run/v,m.sock");
	assert_int_equal(cli_parse_console_port(b, &p), 0);
	assert_string_equal(p.name, "port1");
	assert_string_equal(p.socket, "/run/p,1.sock");
}

static void test_vsock(void **state)
{
	char a[] = "3", b[] = "42,socket=/run/vm.sock", c[] = "4294967294";
	const char *sock;
	uint32_t cid;

	(void)state;
	assert_int_equal(cli_parse_vsock(a, &cid, &sock), 0);
	assert_int_equal(cid, 3);
	assert_null(sock);
	assert_int_equal(cli_parse_vsock(b, &cid, &sock), 0);
	assert_int_equal(cid, 42);
	assert_string_equal(sock, "/run/vm.sock");
	assert_int_equal(cli_parse_vsock(c, &cid, &sock), 0);
	assert_int_equal(cid, 4294967294U);
}

static void test_vsock_errors(void **state)
{
	char a[] = "2", b[] = "0", c[] = "4294967295", d[] = "x",
	     e[] = "5,socket=", f[] = "5,port=1", g[] = "-3", h[] = "99999999999";
	const char *sock;
	uint32_t cid;

	(void)state;
	assert_int_equal(cli_parse_vsock(a, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(b, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(c, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(d, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(e, &cid, &sock), -EINVAL);
	assert_string_equal(e, "5,socket=");
	assert_int_equal(cli_parse_vsock(f, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(g, &cid, &sock), -EINVAL);
	assert_int_equal(cli_parse_vsock(h, &cid, &sock), -EINVAL);
}

static void test_console_port(void **state)
{
	char a[] = "org.example.agent,socket=/tmp/agent.sock", b[] = "noport", c[] = ",socket=/x",
	     d[] = "x,socket=/y,bogus=1";
	struct vm_console_port p;

	(void)state;
	assert_int_equal(cli_parse_console_port(a, &p), 0);
	assert_string_equal(p.name, "org.example.agent");
	assert_string_equal(p.socket, "/tmp/agent.sock");
	assert_int_equal(cli_parse_console_port(b, &p), -EINVAL); /* the socket is required */
	assert_string_equal(b, "noport");
	assert_int_equal(cli_parse_console_port(c, &p), -EINVAL);
	assert_int_equal(cli_parse_console_port(d, &p), -EINVAL);
	assert_string_equal(d, "x,socket=/y,bogus=1");
}

/* cli_def_option() on @def; expect -EINVAL and a message holding @want. */
static void expect_opt_error(struct vm_def *def, int opt, const char *arg, unsigned int flags,
			     const char *want)
{
	struct mgr_err err = {{0}};

	assert_int_equal(cli_def_option(def, opt, arg, flags, &err), -EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("error '%s' lacks '%s'", err.msg, want);
}

static void test_def_sizes_and_switches(void **state)
{
	struct vm_def def;
	struct mgr_err err;

	(void)state;
	vm_def_init(&def);
	assert_int_equal(cli_def_option(&def, CLI_DEF_CPUS, "4", 0, &err), 0);
	assert_int_equal(def.cpus, 4);
	assert_int_equal(cli_def_option(&def, CLI_DEF_MEMORY, "1G", 0, &err), 0);
	assert_int_equal(def.memory_mib, 1024);
	assert_int_equal(cli_def_option(&def, CLI_DEF_HUGEPAGES, "off", 0, &err), 0);
	assert_false(def.hugepages);
	assert_int_equal(cli_def_option(&def, CLI_DEF_PIT, "no", 0, &err), 0);
	assert_false(def.pit);
	assert_int_equal(cli_def_option(&def, CLI_DEF_NESTED, "on", 0, &err), 0);
	assert_true(def.nested);
	expect_opt_error(&def, CLI_DEF_CPUS, "0", 0, "--cpus '0'");
	expect_opt_error(&def, CLI_DEF_MEMORY, "1M", 0, "--memory '1M'");
	expect_opt_error(&def, CLI_DEF_PIT, "maybe", 0, "--pit 'maybe': give on or off");
	expect_opt_error(&def, CLI_DEF_HUGEPAGES, "", 0, "--hugepages");
	expect_opt_error(&def, CLI_DEF_KERNEL, NULL, 0, "--kernel needs a value");
	vm_def_clear(&def);
}

/* Relative paths are made absolute from the working directory. */
static void test_def_paths(void **state)
{
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	struct vm_def def;
	struct mgr_err err;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	vm_def_init(&def);
	assert_int_equal(cli_def_option(&def, CLI_DEF_KERNEL, "k/bzImage", 0, &err), 0);
	snprintf(want, sizeof(want), "%s/k/bzImage", cwd);
	assert_string_equal(def.kernel, want);
	assert_int_equal(cli_def_option(&def, CLI_DEF_DISK, "d,,1.img,ro,io=threads", 0, &err), 0);
	snprintf(want, sizeof(want), "%s/d,1.img", cwd);
	assert_string_equal(def.disks[0].path, want);
	assert_true(def.disks[0].readonly);
	assert_int_equal(def.disks[0].io, DISK_ENGINE_THREADS);
	assert_int_equal(def.disks[0].pci_slot, 0);
	assert_int_equal(cli_def_option(&def, CLI_DEF_VIRTIO_CONSOLE, "hvc.sock", 0, &err), 0);
	snprintf(want, sizeof(want), "%s/hvc.sock", cwd);
	assert_string_equal(def.console.socket, want);
	assert_int_equal(cli_def_option(&def, CLI_DEF_CONSOLE_PORT, "p,socket=/run/p.sock", 0, &err),
			 0);
	assert_string_equal(def.console.ports[0].socket, "/run/p.sock");
	vm_def_clear(&def);
}

static void test_def_devices(void **state)
{
	char arg[64];
	struct vm_def def;
	struct mgr_err err;

	(void)state;
	vm_def_init(&def);
	/* --disk: the same image twice, more than 8, bad words. */
	assert_int_equal(cli_def_option(&def, CLI_DEF_DISK, "/img/a", 0, &err), 0);
	expect_opt_error(&def, CLI_DEF_DISK, "/img/a,ro", 0, "--disk '/img/a,ro': the VM already has");
	expect_opt_error(&def, CLI_DEF_DISK, "/img/b,fast", 0, "--disk '/img/b,fast': give PATH");
	for (int i = 1; i < STORE_MAX_DISKS; i++) {
		snprintf(arg, sizeof(arg), "/img/%d", i);
		assert_int_equal(cli_def_option(&def, CLI_DEF_DISK, arg, 0, &err), 0);
	}
	expect_opt_error(&def, CLI_DEF_DISK, "/img/x", 0, "at most 8 disks");
	assert_int_equal(def.nr_disks, STORE_MAX_DISKS);

	/* --rng, and --rng off gives up the slot; --rng on again keeps an assigned one. */
	assert_int_equal(cli_def_option(&def, CLI_DEF_RNG, NULL, 0, &err), 0);
	assert_true(def.rng.enabled);
	def.rng.pci_slot = 12;
	assert_int_equal(cli_def_option(&def, CLI_DEF_RNG, "on", 0, &err), 0);
	assert_int_equal(def.rng.pci_slot, 12);
	assert_int_equal(cli_def_option(&def, CLI_DEF_RNG, "off", 0, &err), 0);
	assert_false(def.rng.enabled);
	assert_int_equal(def.rng.pci_slot, 0);
	expect_opt_error(&def, CLI_DEF_RNG, "maybe", 0, "--rng 'maybe'");

	/* --vsock: a new CID keeps the device's slot; no socket= is the default. */
	assert_int_equal(cli_def_option(&def, CLI_DEF_VSOCK, "7,socket=/run/v.sock", 0, &err), 0);
	assert_int_equal(def.vsock.cid, 7);
	assert_string_equal(def.vsock.socket, "/run/v.sock");
	def.vsock.pci_slot = 13;
	assert_int_equal(cli_def_option(&def, CLI_DEF_VSOCK, "8", 0, &err), 0);
	assert_int_equal(def.vsock.cid, 8);
	assert_null(def.vsock.socket);
	assert_int_equal(def.vsock.pci_slot, 13);
	expect_opt_error(&def, CLI_DEF_VSOCK, "2", 0, "--vsock '2': give CID[,socket=PATH]");
	assert_int_equal(def.vsock.cid, 8);

	/* --console-port: names are unique, at most 8. */
	assert_int_equal(cli_def_option(&def, CLI_DEF_CONSOLE_PORT, "p0,socket=/s0", 0, &err), 0);
	expect_opt_error(&def, CLI_DEF_CONSOLE_PORT, "p0,socket=/s9", 0,
			 "the VM has a port named 'p0' already");
	expect_opt_error(&def, CLI_DEF_CONSOLE_PORT, "agent", 0, "--console-port 'agent'");
	for (int i = 1; i < STORE_MAX_CONSOLE_PORTS; i++) {
		snprintf(arg, sizeof(arg), "p%d,socket=/s%d", i, i);
		assert_int_equal(cli_def_option(&def, CLI_DEF_CONSOLE_PORT, arg, 0, &err), 0);
	}
	expect_opt_error(&def, CLI_DEF_CONSOLE_PORT, "p9,socket=/s9", 0, "at most 8 ports");
	assert_int_equal(def.console.nr_ports, STORE_MAX_CONSOLE_PORTS);

	/* What the options built passes the validator once the slots are given. */
	snprintf(def.name, sizeof(def.name), "opts");
	assert_int_equal(cli_def_option(&def, CLI_DEF_KERNEL, "/k", 0, &err), 0);
	def.vsock.pci_slot = 0;
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(vm_def_validate(&def, &err), 0);
	assert_int_equal(def.vsock.pci_slot, 9);
	assert_int_equal(def.console.pci_slot, 10);
	vm_def_clear(&def);
}

/* --nic: the switch required, MAC and guards optional, MACs unique, at most 8. */
static void test_def_nic(void **state)
{
	struct vm_def def;
	struct mgr_err err;
	char arg[64];

	(void)state;
	vm_def_init(&def);
	assert_int_equal(cli_def_option(&def, CLI_DEF_NIC, "switch=lan", 0, &err), 0);
	assert_string_equal(def.nics[0].network, "lan");
	assert_string_equal(def.nics[0].mac, "");
	assert_false(def.nics[0].mac_spoofing);
	assert_true(def.nics[0].dhcp_guard);
	assert_true(def.nics[0].router_guard);
	assert_int_equal(def.nics[0].mtu, 1500);
	assert_int_equal(cli_def_option(&def, CLI_DEF_NIC,
	                                "mac=02:AB:00:00:00:01,switch=nat,mac-spoofing=on,"
	                                "dhcp-guard=off,router-guard=off,mtu=65520",
	                                0, &err),
	                 0);
	assert_string_equal(def.nics[1].mac, "02:ab:00:00:00:01");
	assert_true(def.nics[1].mac_spoofing);
	assert_false(def.nics[1].dhcp_guard);
	assert_false(def.nics[1].router_guard);
	assert_int_equal(def.nics[1].mtu, 65520);
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mtu=67", 0, "mtu=67: give 68 to 65520");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mtu=65521", 0, "give 68 to 65520");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mtu=-1500", 0, "give 68 to 65520");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mtu=9k", 0, "give 68 to 65520");
	expect_opt_error(&def, CLI_DEF_NIC, "mac=02:ab:00:00:00:01", 0, "--nic 'mac=02:ab");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mac=02:ab:00:00:00:01", 0, "already");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mac=03:00:00:00:00:01", 0, "unicast");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mac=02:00:00:00:01", 0, "unicast");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=a/b", 0, "not a switch name");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,mac-spoofing=yes", 0, "give switch=NAME");
	expect_opt_error(&def, CLI_DEF_NIC, "switch=x,speed=10", 0, "give switch=NAME");
	for (int i = 2; i < STORE_MAX_NICS; i++) {
		snprintf(arg, sizeof(arg), "switch=s%d", i);
		assert_int_equal(cli_def_option(&def, CLI_DEF_NIC, arg, 0, &err), 0);
	}
	expect_opt_error(&def, CLI_DEF_NIC, "switch=s9", 0, "at most 8 NICs");
	/* Once named, the VM's NICs get derived MACs and pass the validator. */
	snprintf(def.name, sizeof(def.name), "opts");
	assert_int_equal(cli_def_option(&def, CLI_DEF_KERNEL, "/k", 0, &err), 0);
	assert_int_equal(vm_def_assign_slots(&def), 0);
	vm_def_assign_macs(&def);
	assert_int_equal(vm_def_validate(&def, &err), 0);
	assert_int_equal(def.nics[0].pci_slot, 1);
	assert_int_equal(def.nics[7].pci_slot, 8);
	vm_def_clear(&def);
}

/* CLI_DEF_RESOLVE (`new`, `set`): the file must exist and is made canonical. */
static void test_def_resolve(void **state)
{
	char dir[] = "/tmp/nestvm-test-opts.XXXXXX", file[PATH_MAX], rel[PATH_MAX + 8];
	struct vm_def def;
	struct mgr_err err;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/disk.img", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	vm_def_init(&def);
	snprintf(rel, sizeof(rel), "%s/../%s/disk.img,ro", dir, strrchr(dir, '/') + 1);
	assert_int_equal(cli_def_option(&def, CLI_DEF_DISK, rel, CLI_DEF_RESOLVE, &err), 0);
	assert_string_equal(def.disks[0].path, file);
	expect_opt_error(&def, CLI_DEF_DISK, file, CLI_DEF_RESOLVE, "already has this disk");
	snprintf(rel, sizeof(rel), "%s/none.img", dir);
	expect_opt_error(&def, CLI_DEF_DISK, rel, CLI_DEF_RESOLVE, "No such file");
	expect_opt_error(&def, CLI_DEF_KERNEL, dir, CLI_DEF_RESOLVE, "not a regular file");
	/* Without it (`run`), a missing file is the VM's creation's to report. */
	assert_int_equal(cli_def_option(&def, CLI_DEF_DISK, rel, 0, &err), 0);
	vm_def_clear(&def);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disk),
	    cmocka_unit_test(test_disk_errors),
	    cmocka_unit_test(test_vsock),
	    cmocka_unit_test(test_vsock_errors),
	    cmocka_unit_test(test_console_port),
	    cmocka_unit_test(test_disk_comma_escape),
	    cmocka_unit_test(test_socket_comma_escape),
	    cmocka_unit_test(test_def_sizes_and_switches),
	    cmocka_unit_test(test_def_paths),
	    cmocka_unit_test(test_def_devices),
	    cmocka_unit_test(test_def_nic),
	    cmocka_unit_test(test_def_resolve),
	};

	return cmocka_run_group_tests_name("opts_virtio", tests, NULL, NULL);
}
