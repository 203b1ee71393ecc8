/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the VM manager: definition parsing and its error messages,
 * the schema's devices and PCI slots, the translation into a vm_config, the
 * store (create, list, load, save, remove, locks, records), the control
 * protocol's request validation, replies and line framing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/vm.h"
#include "manager/protocol.h"
#include "manager/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char good_def[] = "{\n"
			       "  \"format\": 1,\n"
			       "  \"name\": \"web1\",\n"
			       "  \"cpus\": 4,\n"
			       "  \"memory_mib\": 2048,\n"
			       "  \"nested\": true,\n"
			       "  \"kernel\": \"/boot/vmlinuz\",\n"
			       "  \"initrd\": null,\n"
			       "  \"cmdline\": \"console=ttyS0 quiet\",\n"
			       "  \"disks\": [{\"path\": \"/var/img/a.raw\", \"readonly\": true}],\n"
			       "  \"nics\": [{\"mac\": \"02:4e:56:00:00:01\", \"network\": \"lan\"}]\n"
			       "}\n";

/* Parse @text; expect failure with a message containing each of the strings given. */
static void expect_def_error(const char *text, ...)
{
	struct vm_def def;
	struct mgr_err err = {{0}};
	const char *want;
	va_list ap;

	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	va_start(ap, text);
	while ((want = va_arg(ap, const char *))) {
		if (!strstr(err.msg, want))
			fail_msg("error '%s' lacks '%s' (input: %s)", err.msg, want, text);
	}
	va_end(ap);
	/* Left cleared on error: nothing to free, nothing stale. */
	assert_null(def.kernel);
	assert_int_equal(def.nr_disks, 0);
}

static void test_def_parse_good(void **state)
{
	struct vm_def def, again;
	struct mgr_err err;
	char *text;

	(void)state;
	assert_int_equal(vm_def_parse(good_def, strlen(good_def), "f", &def, &err), 0);
	assert_string_equal(def.name, "web1");
	assert_int_equal(def.cpus, 4);
	assert_int_equal(def.memory_mib, 2048);
	assert_true(def.nested);
	assert_string_equal(def.kernel, "/boot/vmlinuz");
	assert_null(def.initrd);
	assert_string_equal(def.cmdline, "console=ttyS0 quiet");
	assert_int_equal(def.nr_disks, 1);
	assert_true(def.disks[0].readonly);
	assert_int_equal(def.nr_nics, 1);
	assert_string_equal(def.nics[0].network, "lan");
	/* Round trip. */
	text = vm_def_format(&def);
	assert_non_null(text);
	assert_int_equal(vm_def_parse(text, strlen(text), "f", &again, &err), 0);
	assert_int_equal(again.cpus, 4);
	assert_string_equal(again.disks[0].path, "/var/img/a.raw");
	assert_string_equal(again.nics[0].mac, "02:4e:56:00:00:01");
	assert_int_equal(vm_def_validate(&again, &err), 0);
	free(text);
	vm_def_clear(&def);
	vm_def_clear(&again);
}

static void test_def_parse_errors(void **state)
{
	(void)state;
	expect_def_error("{\"name\": \"a\", \"cpus\": \"two\"}", "/x/vm.json", "field 'cpus'",
			 "got \"two\"", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":0,\"memory_mib\":64,\"kernel\":\"/k\"}", "'cpus'",
			 "1 to 254", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":255,\"memory_mib\":64,\"kernel\":\"/k\"}", "'cpus'",
			 NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":8,\"kernel\":\"/k\"}",
			 "'memory_mib'", "got 8", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"k\"}", "'kernel'",
			 "absolute", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64}", "'kernel'", "missing",
			 NULL);
	expect_def_error("{\"name\":\"a\",\"cpu\":1}", "field 'cpu'", "unknown field", NULL);
	expect_def_error("{\"name\":\"a\",\"name\":\"b\"}", "/x/vm.json:1:", "duplicate", NULL);
	expect_def_error("{\n\"name\": \"a\",\n", "/x/vm.json:3:", "not valid JSON", NULL);
	expect_def_error("[1]", "top level", NULL);
	expect_def_error("", "not valid JSON", NULL);
	expect_def_error("{\"name\":\"a b\"}", "field 'name'", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"disks\":[{\"path\":\"/d\"},{\"readonly\":true}]}",
			 "disks[1].path", "missing", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"disks\":[{\"path\":\"/d\",\"cache\":1}]}",
			 "disks[0].cache", "unknown", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"01:00:00:00:00:01\"}]}",
			 "nics[0].mac", "unicast", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"zz:00:00:00:00:01\"}]}",
			 "nics[0].mac", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"cmdline\":\"a\\nb\"}",
			 "'cmdline'", "control character", NULL);
	expect_def_error("{\"name\":\"a\",\"kernel\":\"/k\\u0000x\"}", "not valid JSON", NULL);
	expect_def_error("{\"format\":5,\"name\":\"a\"}", "'format'", "newer", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1.5}", "'cpus'", NULL);
	expect_def_error("{\"name\":\"a\",\"nested\":\"yes\"}", "'nested'", "true or false", NULL);
	expect_def_error("{\"name\":\"a\",\"disks\":{}}", "'disks'", "array", NULL);
	expect_def_error("{\"name\":\"a\",\"cpu_affinity\":1}", "'cpu_affinity'", "list of host CPUs",
			 NULL);
	expect_def_error("{\"name\":\"a\",\"cpu_affinity\":\"3-1\"}", "'cpu_affinity'", "low-high",
			 NULL);
}

/* A format 2 definition with every field set to something other than its default. */
static const char full_def[] =
    "{\n"
    "  \"format\": 4,\n"
    "  \"name\": \"full\",\n"
    "  \"cpus\": 2,\n"
    "  \"memory_mib\": 256,\n"
    "  \"nested\": true,\n"
    "  \"hugepages\": false,\n"
    "  \"pit\": false,\n"
    "  \"cpu_affinity\": \"3,0-1,2\",\n"
    "  \"kernel\": \"/boot/vmlinuz\",\n"
    "  \"initrd\": \"/boot/initrd.img\",\n"
    "  \"cmdline\": \"console=ttyS0\",\n"
    "  \"disks\": [{\"path\": \"/img/a.raw\", \"readonly\": false, \"io\": \"threads\", "
    "\"pci_slot\": 5},\n"
    "            {\"path\": \"/img/b.raw\", \"readonly\": true, \"io\": \"uring\", \"pci_slot\": 2}],\n"
    "  \"nics\": [{\"mac\": \"02:4e:56:00:00:01\", \"network\": null}],\n"
    "  \"rng\": {\"pci_slot\": 9},\n"
    "  \"vsock\": {\"cid\": 42, \"socket\": \"/run/vm/v.sock\", \"pci_slot\": 3},\n"
    "  \"virtio_console\": {\"socket\": \"/run/vm/hvc.sock\", \"ports\": [{\"name\": "
    "\"org.nestvm.agent\", \"socket\": \"/run/vm/agent.sock\"}, {\"name\": \"log\", \"socket\": "
    "\"/run/vm/log.sock\"}], \"pci_slot\": 31}\n"
    "}\n";

static void assert_full_def(const struct vm_def *def)
{
	assert_string_equal(def->name, "full");
	assert_int_equal(def->cpus, 2);
	assert_int_equal(def->memory_mib, 256);
	assert_true(def->nested);
	assert_false(def->hugepages);
	assert_false(def->pit);
	assert_string_equal(def->cpu_affinity, "0-3"); /* kept as it is written back */
	assert_string_equal(def->initrd, "/boot/initrd.img");
	assert_int_equal(def->nr_disks, 2);
	assert_string_equal(def->disks[0].path, "/img/a.raw");
	assert_int_equal(def->disks[0].io, DISK_ENGINE_THREADS);
	assert_int_equal(def->disks[0].pci_slot, 5);
	assert_true(def->disks[1].readonly);
	assert_int_equal(def->disks[1].io, DISK_ENGINE_URING);
	assert_int_equal(def->disks[1].pci_slot, 2);
	assert_int_equal(def->nr_nics, 1);
	assert_null(def->nics[0].network);
	/* A format 2 NIC: the guards' defaults and the first free slot. */
	assert_false(def->nics[0].mac_spoofing);
	assert_true(def->nics[0].dhcp_guard);
	assert_true(def->nics[0].router_guard);
	assert_int_equal(def->nics[0].pci_slot, 1);
	assert_true(def->rng.enabled);
	assert_int_equal(def->rng.pci_slot, 9);
	assert_int_equal(def->vsock.cid, 42);
	assert_string_equal(def->vsock.socket, "/run/vm/v.sock");
	assert_int_equal(def->vsock.pci_slot, 3);
	assert_string_equal(def->console.socket, "/run/vm/hvc.sock");
	assert_int_equal(def->console.nr_ports, 2);
	assert_string_equal(def->console.ports[0].name, "org.nestvm.agent");
	assert_string_equal(def->console.ports[1].socket, "/run/vm/log.sock");
	assert_int_equal(def->console.pci_slot, 31);
}

/* Every field survives vm_def_format() and vm_def_parse(), and the text is stable. */
static void test_def_round_trip_every_field(void **state)
{
	struct vm_def def, again;
	struct mgr_err err;
	char *text, *text2;

	(void)state;
	assert_int_equal(vm_def_parse(full_def, strlen(full_def), "f", &def, &err), 0);
	assert_full_def(&def);
	assert_int_equal(vm_def_validate(&def, &err), 0);
	text = vm_def_format(&def);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"format\": 4"));
	assert_int_equal(vm_def_parse(text, strlen(text), "f", &again, &err), 0);
	assert_full_def(&again);
	text2 = vm_def_format(&again);
	assert_string_equal(text, text2);
	free(text);
	free(text2);
	vm_def_clear(&def);
	vm_def_clear(&again);
}

/*
 * NICs: format 3's fields, "network" read as the switch, MACs unique, a
 * derived MAC stable and distinct per adapter, and the translation.
 */
static void test_def_nics(void **state)
{
	static const char text[] =
	    "{\"format\": 3, \"name\": \"n\", \"cpus\": 1, \"memory_mib\": 64, \"kernel\": \"/k\","
	    " \"nics\": [{\"mac\": \"02:00:00:00:00:01\", \"switch\": \"lan\", \"mac_spoofing\": true,"
	    " \"dhcp_guard\": false, \"router_guard\": false, \"mtu\": 9000, \"pci_slot\": 7},"
	    " {\"mac\": \"02:00:00:00:00:02\", \"network\": \"old\"}]}";
	struct vm_def def, d2;
	struct vm_config cfg;
	struct mgr_err err;
	char mac0[18];

	(void)state;
	assert_int_equal(vm_def_parse(text, strlen(text), "f", &def, &err), 0);
	assert_int_equal(def.nr_nics, 2);
	assert_string_equal(def.nics[0].network, "lan");
	assert_true(def.nics[0].mac_spoofing);
	assert_false(def.nics[0].dhcp_guard);
	assert_false(def.nics[0].router_guard);
	assert_int_equal(def.nics[0].pci_slot, 7);
	assert_int_equal(def.nics[0].mtu, 9000);
	assert_int_equal(def.nics[1].mtu, 1500);
	assert_string_equal(def.nics[1].network, "old");
	assert_true(def.nics[1].dhcp_guard);
	assert_int_equal(def.nics[1].pci_slot, 1);
	assert_int_equal(vm_def_to_config(&def, NULL, &cfg, &err), 0);
	assert_int_equal(cfg.nr_nics, 2);
	assert_string_equal(cfg.nics[1].switch_name, "old");
	assert_int_equal(cfg.nics[0].mac[5], 1);
	assert_true(cfg.nics[0].mac_spoofing);
	assert_int_equal(cfg.nics[0].pci_slot, 7);
	assert_int_equal(cfg.nics[0].mtu, 9000);
	assert_string_equal(cfg.vm_name, "n");

	/* Derived MACs: the same for the same name and index, distinct per index. */
	vm_def_init(&d2);
	snprintf(d2.name, sizeof(d2.name), "vm1");
	d2.nr_nics = 3;
	for (unsigned int i = 0; i < 3; i++)
		vm_def_init_nic(&d2.nics[i]);
	vm_def_assign_macs(&d2);
	snprintf(mac0, sizeof(mac0), "%s", d2.nics[0].mac);
	assert_int_equal(strlen(mac0), 17);
	assert_string_not_equal(d2.nics[0].mac, d2.nics[1].mac);
	assert_string_not_equal(d2.nics[1].mac, d2.nics[2].mac);
	d2.nics[0].mac[0] = '\0';
	vm_def_assign_macs(&d2);
	assert_string_equal(d2.nics[0].mac, mac0);
	/* A MAC given by hand that a derived one would take: another is derived. */
	snprintf(d2.nics[1].mac, sizeof(d2.nics[1].mac), "%s", mac0);
	d2.nics[0].mac[0] = '\0';
	vm_def_assign_macs(&d2);
	assert_string_not_equal(d2.nics[0].mac, mac0);
	vm_def_clear(&d2);
	vm_def_clear(&def);

	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\"},{\"mac\":\"02:00:00:00:00:01\"}]}",
			 "nics[1].mac", "already", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\",\"switch\":\"a b\"}]}",
			 "nics[0].switch", "switch name", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\",\"dhcp_guard\":1}]}",
			 "nics[0].dhcp_guard", "true or false", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\",\"pci_slot\":0}]}",
			 "nics[0].pci_slot", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\",\"switch\":\"a\",\"network\":\"b\"}]}",
			 "nics[0].network", "given already", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","
			 "\"nics\":[{\"mac\":\"02:00:00:00:00:01\",\"mtu\":65521}]}",
			 "nics[0].mtu", "68 to 65520", NULL);
}

/* A format 1 file (before the devices and slots): it reads as it always ran. */
static void test_def_old_format(void **state)
{
	static const char old[] =
	    "{\"format\": 1, \"name\": \"old\", \"cpus\": 1, \"memory_mib\": 64, \"nested\": false,"
	    " \"kernel\": \"/k\", \"initrd\": null, \"cmdline\": null,"
	    " \"disks\": [{\"path\": \"/a\", \"readonly\": false}, {\"path\": \"/b\", \"readonly\": true}],"
	    " \"nics\": []}";
	static const char oldest[] = "{\"name\": \"old\", \"cpus\": 1, \"memory_mib\": 64, \"kernel\": \"/k\"}";
	struct vm_def def;
	struct mgr_err err;
	char *text;

	(void)state;
	assert_int_equal(vm_def_parse(old, strlen(old), "f", &def, &err), 0);
	assert_true(def.hugepages);
	assert_true(def.pit);
	assert_int_equal(def.disks[0].io, DISK_ENGINE_AUTO);
	/* The slots the machine gave them before slots were recorded: 00:01.0 onwards. */
	assert_int_equal(def.disks[0].pci_slot, 1);
	assert_int_equal(def.disks[1].pci_slot, 2);
	assert_false(def.rng.enabled);
	assert_int_equal(def.vsock.cid, 0);
	assert_false(vm_def_has_console(&def));
	/* Written back, it records them. */
	text = vm_def_format(&def);
	assert_non_null(strstr(text, "\"pci_slot\": 2"));
	free(text);
	vm_def_clear(&def);
	assert_int_equal(vm_def_parse(oldest, strlen(oldest), "f", &def, &err), 0);
	assert_true(def.hugepages && def.pit);
	assert_int_equal(def.nr_disks, 0);
	vm_def_clear(&def);
}

#define DEF_HEAD "{\"name\":\"a\",\"cpus\":1,\"memory_mib\":64,\"kernel\":\"/k\","

/* Bad device fields are refused, the message naming the file and the field. */
static void test_def_device_errors(void **state)
{
	(void)state;
	expect_def_error(DEF_HEAD "\"hugepages\":1}", "/x/vm.json", "field 'hugepages'",
			 "true or false", NULL);
	expect_def_error(DEF_HEAD "\"pit\":\"off\"}", "field 'pit'", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"io\":\"aio\"}]}", "'disks[0].io'",
			 "\"threads\"", "got \"aio\"", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"pci_slot\":0}]}",
			 "'disks[0].pci_slot'", "1 to 31", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"pci_slot\":32}]}",
			 "'disks[0].pci_slot'", "got 32", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"pci_slot\":\"3\"}]}",
			 "'disks[0].pci_slot'", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"pci_slot\":4}],"
			 "\"rng\":{\"pci_slot\":4}}",
			 "'rng.pci_slot'", "PCI slot 4 is disks[0]'s already", NULL);
	expect_def_error(DEF_HEAD "\"disks\":[{\"path\":\"/d\",\"pci_slot\":6},"
			 "{\"path\":\"/e\",\"pci_slot\":6}]}",
			 "'disks[1].pci_slot'", "disks[0]'s", NULL);
	expect_def_error(DEF_HEAD "\"rng\":true}", "field 'rng'", "null or an object", NULL);
	expect_def_error(DEF_HEAD "\"rng\":{\"slot\":1}}", "field 'rng'", "unknown field 'slot'",
			 NULL);
	expect_def_error(DEF_HEAD "\"vsock\":{\"cid\":2}}", "'vsock.cid'", "3 to 4294967294",
			 "got 2", NULL);
	expect_def_error(DEF_HEAD "\"vsock\":{\"cid\":4294967295}}", "'vsock.cid'", NULL);
	expect_def_error(DEF_HEAD "\"vsock\":{\"socket\":\"/s\"}}", "'vsock.cid'", "missing", NULL);
	expect_def_error(DEF_HEAD "\"vsock\":{\"cid\":3,\"socket\":\"v.sock\"}}", "'vsock.socket'",
			 "absolute", NULL);
	expect_def_error(DEF_HEAD "\"vsock\":{\"cid\":3,\"pci_slot\":31},"
			 "\"virtio_console\":{\"socket\":\"/h\",\"pci_slot\":31}}",
			 "'virtio_console.pci_slot'", "vsock's", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{}}", "field 'virtio_console'",
			 "a socket (hvc0), ports, or both", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{\"ports\":[{\"name\":\"p\"}]}}",
			 "'virtio_console.ports[0].socket'", "missing", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{\"ports\":[{\"name\":\"\",\"socket\":\"/s\"}]}}",
			 "'virtio_console.ports[0].name'", "1 to 64 bytes", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{\"ports\":[{\"name\":\"p\",\"socket\":\"/s\"},"
			 "{\"name\":\"p\",\"socket\":\"/t\"}]}}",
			 "'virtio_console.ports[1].name'", "ports[0]", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{\"ports\":[{\"name\":\"a\\tb\",\"socket\":\"/s\"}]}}",
			 "'virtio_console.ports[0].name'", "control character", NULL);
	expect_def_error(DEF_HEAD "\"virtio_console\":{\"ports\":"
			 "[{},{},{},{},{},{},{},{},{}]}}",
			 "'virtio_console.ports'", "at most 8", NULL);
	expect_def_error(DEF_HEAD "\"serial\":\"stdio\"}", "field 'serial'", "unknown field", NULL);
}

/* A definition built in code is judged by the same rules: unassigned slots are refused. */
static void test_def_validate_built(void **state)
{
	struct vm_def def;
	struct mgr_err err;

	(void)state;
	vm_def_init(&def);
	snprintf(def.name, sizeof(def.name), "built");
	assert_int_equal(vm_def_set_str(&def.kernel, "/k"), 0);
	def.rng.enabled = true;
	assert_int_equal(vm_def_validate(&def, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "definition: field 'rng.pci_slot'"));
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(vm_def_validate(&def, &err), 0);
	def.vsock.cid = 1;
	def.vsock.pci_slot = 2;
	assert_int_equal(vm_def_validate(&def, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'vsock.cid'"));
	vm_def_clear(&def);
}

/* Add @path as a disk without a slot, as `set --disk` does. */
static void add_disk(struct vm_def *def, const char *path)
{
	assert_int_equal(vm_def_set_str(&def->disks[def->nr_disks].path, path), 0);
	def->nr_disks++;
}

/* A device keeps its slot whatever is removed or added around it. */
static void test_def_slots_stable(void **state)
{
	struct vm_def def, again;
	struct mgr_err err;
	char *text;

	(void)state;
	vm_def_init(&def);
	snprintf(def.name, sizeof(def.name), "slots");
	assert_int_equal(vm_def_set_str(&def.kernel, "/k"), 0);
	add_disk(&def, "/d0");
	add_disk(&def, "/d1");
	add_disk(&def, "/d2");
	def.rng.enabled = true;
	def.vsock.cid = 3;
	/* As `run` places them: disks, rng, vsock from 00:01.0. */
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.disks[0].pci_slot, 1);
	assert_int_equal(def.disks[2].pci_slot, 3);
	assert_int_equal(def.rng.pci_slot, 4);
	assert_int_equal(def.vsock.pci_slot, 5);

	/* Remove the middle disk: nothing moves, slot 2 is free. */
	vm_def_remove_disk(&def, 1);
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_string_equal(def.disks[1].path, "/d2");
	assert_int_equal(def.disks[0].pci_slot, 1);
	assert_int_equal(def.disks[1].pci_slot, 3);
	assert_int_equal(def.rng.pci_slot, 4);
	assert_int_equal(def.vsock.pci_slot, 5);

	/* A console added takes the free slot 2; a disk added after it the next free, 6. */
	assert_int_equal(vm_def_set_str(&def.console.socket, "/h"), 0);
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.console.pci_slot, 2);
	add_disk(&def, "/d3");
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.disks[2].pci_slot, 6);
	assert_int_equal(def.rng.pci_slot, 4);

	/* The rng off and on again: it gets the lowest free slot, the others stay. */
	def.rng.enabled = false;
	def.rng.pci_slot = 0;
	assert_int_equal(vm_def_assign_slots(&def), 0);
	def.rng.enabled = true;
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.rng.pci_slot, 4);

	/* And the recorded slots are what a later load gives. */
	text = vm_def_format(&def);
	assert_non_null(text);
	assert_int_equal(vm_def_parse(text, strlen(text), "f", &again, &err), 0);
	assert_int_equal(again.disks[0].pci_slot, 1);
	assert_int_equal(again.disks[1].pci_slot, 3);
	assert_int_equal(again.disks[2].pci_slot, 6);
	assert_int_equal(again.console.pci_slot, 2);
	assert_int_equal(again.vsock.pci_slot, 5);
	free(text);
	vm_def_clear(&again);

	/* A port removed keeps the device (and its slot) while hvc0 remains. */
	assert_int_equal(vm_def_set_str(&def.console.ports[0].name, "p"), 0);
	assert_int_equal(vm_def_set_str(&def.console.ports[0].socket, "/p"), 0);
	def.console.nr_ports = 1;
	vm_def_remove_port(&def, 0);
	assert_int_equal(def.console.pci_slot, 2);
	vm_def_clear(&def);
}

/* Bus 0 holds 31 devices; the 32nd has no slot. */
static void test_def_slots_full(void **state)
{
	struct vm_def def;

	(void)state;
	vm_def_init(&def);
	def.disks[0].pci_slot = 31;
	def.nr_disks = 1;
	def.rng.enabled = true;
	def.rng.pci_slot = 0;
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.rng.pci_slot, 1);
	memset(&def, 0, sizeof(def));
	/* 8 disks at 24..31, the vsock at 1..23 would fit: check the search runs past them. */
	for (unsigned int i = 0; i < STORE_MAX_DISKS; i++)
		def.disks[i].pci_slot = 24 + i;
	def.nr_disks = STORE_MAX_DISKS;
	def.vsock.cid = 3;
	assert_int_equal(vm_def_assign_slots(&def), 0);
	assert_int_equal(def.vsock.pci_slot, 1);
}

/* vm_def_to_config(): what the monitor and `run` hand to vm_create(). */
static void test_def_to_config(void **state)
{
	struct vm_config cfg;
	struct vm_def def;
	struct mgr_err err;

	(void)state;
	assert_int_equal(vm_def_parse(full_def, strlen(full_def), "f", &def, &err), 0);
	assert_int_equal(vm_def_to_config(&def, "/default.sock", &cfg, &err), 0);
	assert_string_equal(cfg.kernel, "/boot/vmlinuz");
	assert_string_equal(cfg.cmdline, "console=ttyS0");
	assert_int_equal(cfg.cpus, 2);
	assert_int_equal(cfg.memory, 256ULL << 20);
	assert_true(cfg.nested);
	assert_false(cfg.hugepages);
	assert_false(cfg.pit);
	assert_int_equal(cfg.console, VM_CONSOLE_NONE);
	assert_string_equal(cfg.kvm_path, "/dev/kvm");
	assert_int_equal(cfg.nr_disks, 2);
	assert_int_equal(cfg.disks[0].engine, DISK_ENGINE_THREADS);
	assert_int_equal(cfg.disks[0].pci_slot, 5);
	assert_true(cfg.disks[1].readonly);
	assert_int_equal(cfg.disks[1].pci_slot, 2);
	assert_true(cfg.rng);
	assert_int_equal(cfg.rng_pci_slot, 9);
	assert_int_equal(cfg.vsock_cid, 42);
	/* The definition's own socket wins over the default. */
	assert_string_equal(cfg.vsock_socket, "/run/vm/v.sock");
	assert_int_equal(cfg.vsock_pci_slot, 3);
	assert_string_equal(cfg.hvc_socket, "/run/vm/hvc.sock");
	assert_int_equal(cfg.nr_console_ports, 2);
	assert_string_equal(cfg.console_ports[0].name, "org.nestvm.agent");
	assert_string_equal(cfg.console_ports[1].socket, "/run/vm/log.sock");
	assert_int_equal(cfg.console_pci_slot, 31);

	/* No socket in the definition: the caller's default; none at all is an error. */
	free(def.vsock.socket);
	def.vsock.socket = NULL;
	assert_int_equal(vm_def_to_config(&def, "/default.sock", &cfg, &err), 0);
	assert_string_equal(cfg.vsock_socket, "/default.sock");
	assert_int_equal(vm_def_to_config(&def, NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vsock"));
	vm_def_clear(&def);

	/* An empty command line is "", as the monitor always gave. */
	vm_def_init(&def);
	assert_int_equal(vm_def_to_config(&def, NULL, &cfg, &err), 0);
	assert_string_equal(cfg.cmdline, "");
	assert_true(cfg.hugepages && cfg.pit);
	assert_int_equal(cfg.nr_disks, 0);
	assert_false(cfg.rng);
	assert_int_equal(cfg.vsock_cid, 0);
	assert_null(cfg.hvc_socket);
	vm_def_clear(&def);
}

static void test_names(void **state)
{
	static const char *const good[] = {"a", "web-1", "x.y_z", "0abc",
					   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	static const char *const bad[] = {"", ".", "..", ".hidden", "-x", "a/b", "a b", "é",
					  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(store_check_name(good[i], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(store_check_name(bad[i], NULL), -EINVAL);
}

/* A store in a fresh temporary directory. */
static int store_setup(void **state)
{
	static struct store st;
	char tmpl[] = "/tmp/nestvm-test-store.XXXXXX";
	struct mgr_err err;

	if (!mkdtemp(tmpl))
		return -1;
	if (store_open(&st, tmpl, &err) < 0)
		return -1;
	*state = &st;
	return 0;
}

static int store_teardown(void **state)
{
	struct store *st = *state;
	char cmd[STORE_PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st->home);
	return system(cmd) == 0 ? 0 : -1;
}

static void make_def(struct vm_def *def, const char *name)
{
	memset(def, 0, sizeof(*def));
	snprintf(def->name, sizeof(def->name), "%s", name);
	def->cpus = 1;
	def->memory_mib = 64;
	assert_int_equal(vm_def_set_str(&def->kernel, "/boot/k"), 0);
}

static void test_store_crud(void **state)
{
	struct store *st = *state;
	char(*names)[STORE_NAME_MAX + 1] = NULL;
	char path[STORE_PATH_MAX + 32];
	struct vm_def def, got;
	struct mgr_err err;
	struct stat sb;

	make_def(&def, "beta");
	assert_int_equal(store_create(st, &def, &err), 0);
	assert_int_equal(store_create(st, &def, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "already exists"));
	snprintf(def.name, sizeof(def.name), "alpha");
	assert_int_equal(store_create(st, &def, &err), 0);
	/* Stray entries are not VMs. */
	snprintf(path, sizeof(path), "%s/.removing-x-1", st->home);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/file", st->home);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(store_list(st, &names, &err), 2);
	assert_string_equal(names[0], "alpha");
	assert_string_equal(names[1], "beta");
	free(names);

	assert_int_equal(store_load(st, "alpha", &got, &err), 0);
	assert_int_equal(got.memory_mib, 64);
	got.cpus = 3;
	assert_int_equal(store_save(st, &got, &err), 0);
	vm_def_clear(&got);
	assert_int_equal(store_load(st, "alpha", &got, &err), 0);
	assert_int_equal(got.cpus, 3);
	vm_def_clear(&got);
	/* No temporary file is left behind by the atomic write. */
	assert_int_equal(store_path(st, "alpha", NULL, path, sizeof(path)), 0);
	{
		char cmd[STORE_PATH_MAX + 64];

		snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", path);
		assert_int_not_equal(system(cmd), 0);
	}
	/* The name inside must match the directory. */
	assert_int_equal(store_path(st, "alpha", "vm.json", path, sizeof(path)), 0);
	{
		char *text = vm_def_format(&def); /* name "alpha" */
		char *p = strstr(text, "alpha");

		memcpy(p, "gamma", 5);
		assert_int_equal(store_write_atomic(path, text, strlen(text)), 0);
		free(text);
	}
	assert_int_equal(store_load(st, "alpha", &got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "field 'name'"));
	assert_non_null(strstr(err.msg, path));

	assert_int_equal(store_remove(st, "beta", &err), 0);
	assert_int_equal(store_load(st, "beta", &got, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no VM named 'beta'"));
	assert_int_equal(store_path(st, "beta", NULL, path, sizeof(path)), 0);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(store_remove(st, "beta", &err), -ENOENT);
	vm_def_clear(&def);
}

static void test_store_locks(void **state)
{
	struct store *st = *state;
	struct vm_def def;
	struct mgr_err err;
	int a, b, d;

	make_def(&def, "locky");
	assert_int_equal(store_create(st, &def, &err), 0);
	vm_def_clear(&def);
	assert_int_equal(store_lock_held(st, "locky", STORE_LOCK_RUN), 0);
	a = store_lock_acquire(st, "locky", STORE_LOCK_RUN, 0, &err);
	assert_true(a >= 0);
	/* OFD locks conflict between descriptions even in one process. */
	b = store_lock_acquire(st, "locky", STORE_LOCK_RUN, 0, &err);
	assert_int_equal(b, -EBUSY);
	b = store_lock_acquire(st, "locky", STORE_LOCK_RUN, 100, &err);
	assert_int_equal(b, -EBUSY);
	assert_int_equal(store_lock_held(st, "locky", STORE_LOCK_RUN), 1);
	/* The definition lock is a different byte. */
	assert_int_equal(store_lock_held(st, "locky", STORE_LOCK_DEF), 0);
	d = store_lock_acquire(st, "locky", STORE_LOCK_DEF, 0, &err);
	assert_true(d >= 0);
	store_lock_release(d);
	/* Taking it again on the same description succeeds (the monitor's inherited fd). */
	assert_int_equal(store_lock_take(a, STORE_LOCK_RUN), 0);
	store_lock_release(a);
	assert_int_equal(store_lock_held(st, "locky", STORE_LOCK_RUN), 0);
	assert_int_equal(store_lock_acquire(st, "nosuch", STORE_LOCK_RUN, 0, &err), -ENOENT);
}

static void test_store_records(void **state)
{
	struct store *st = *state;
	struct store_runtime rt = {.pid = 1234, .started = 1700000000, .state = "running"}, rt2;
	struct store_exit ex = {.status = 4, .at = 1700000100, .crashed = true,
				.reason = "the guest crashed"},
			  ex2;
	struct vm_def def;
	struct mgr_err err;
	char path[STORE_PATH_MAX], tail[64];
	FILE *f;

	make_def(&def, "rec");
	assert_int_equal(store_create(st, &def, &err), 0);
	vm_def_clear(&def);
	assert_int_equal(store_runtime_read(st, "rec", &rt2), -ENOENT);
	assert_int_equal(store_runtime_write(st, "rec", &rt), 0);
	assert_int_equal(store_runtime_read(st, "rec", &rt2), 0);
	assert_int_equal(rt2.pid, 1234);
	assert_string_equal(rt2.state, "running");
	store_runtime_clear(st, "rec");
	assert_int_equal(store_runtime_read(st, "rec", &rt2), -ENOENT);
	assert_int_equal(store_exit_write(st, "rec", &ex), 0);
	assert_int_equal(store_exit_read(st, "rec", &ex2), 0);
	assert_int_equal(ex2.status, 4);
	assert_true(ex2.crashed);
	assert_false(ex2.start_failed);
	assert_string_equal(ex2.reason, "the guest crashed");
	/* A hand-broken record reads as broken, not as a crash of the reader. */
	assert_int_equal(store_path(st, "rec", "last-exit.json", path, sizeof(path)), 0);
	assert_int_equal(store_write_atomic(path, "{\"status\":\"x\"", 13), 0);
	assert_int_equal(store_exit_read(st, "rec", &ex2), -EINVAL);

	assert_int_equal(store_path(st, "rec", "monitor.log", path, sizeof(path)), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("one\ntwo\nthree\nfour\n", f);
	fclose(f);
	store_log_tail(path, 2, tail, sizeof(tail));
	assert_string_equal(tail, "three\nfour");
	store_log_tail(path, 10, tail, sizeof(tail));
	assert_string_equal(tail, "one\ntwo\nthree\nfour");
	store_log_tail("/nonexistent", 2, tail, sizeof(tail));
	assert_string_equal(tail, "");
}

/* Parse @line; return the error code, or "ok". */
static const char *parse(const char *line, struct api_request *req)
{
	struct api_error err;
	int r = api_request_parse(line, strlen(line), req, &err);

	return r == 0 ? "ok" : err.code;
}

static void test_request_parse(void **state)
{
	struct api_request req;

	(void)state;
	assert_string_equal(parse("{\"cmd\":\"status\"}", &req), "ok");
	assert_int_equal(req.cmd, API_CMD_STATUS);
	assert_null(req.id);
	api_request_clear(&req);
	assert_string_equal(parse("{\"id\":7,\"cmd\":\"stop\",\"timeout\":30,\"force\":true}\r",
				  &req),
			    "ok");
	assert_int_equal(req.cmd, API_CMD_STOP);
	assert_int_equal(req.timeout_s, 30);
	assert_true(req.force);
	assert_int_equal(json_integer_value(req.id), 7);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"console\",\"replay\":false,\"id\":\"x\"}", &req), "ok");
	assert_int_equal(req.cmd, API_CMD_CONSOLE);
	assert_false(req.replay);
	api_request_clear(&req);

	assert_string_equal(parse("nope", &req), API_ERR_PARSE);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"status\"} trailing", &req), API_ERR_PARSE);
	api_request_clear(&req);
	assert_string_equal(parse("[]", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":5}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	/* The id of a bad request is still echoed. */
	assert_string_equal(parse("{\"id\":9,\"cmd\":\"reboot\"}", &req), API_ERR_UNKNOWN);
	assert_int_equal(json_integer_value(req.id), 9);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"pause\",\"force\":true}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"stop\",\"timeout\":86401}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"stop\",\"timeout\":\"5\"}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"stop\",\"force\":1}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"status\",\"id\":[1]}", &req), API_ERR_INVALID);
	api_request_clear(&req);
	assert_string_equal(parse("{\"cmd\":\"status\",\"cmd\":\"kill\"}", &req), API_ERR_PARSE);
	api_request_clear(&req);
	{
		static const char nul[] = "{\"cmd\":\"status\"}\0{\"cmd\":\"kill\"}";
		struct api_error err;

		assert_int_equal(api_request_parse(nul, sizeof(nul) - 1, &req, &err), -EINVAL);
		api_request_clear(&req);
	}
}

static void test_replies(void **state)
{
	json_t *id = json_integer(3), *res;
	struct api_error err;
	char *line;

	(void)state;
	line = api_reply_ok(id, json_pack("{s:s}", "state", "paused"));
	assert_non_null(line);
	assert_int_equal(line[strlen(line) - 1], '\n');
	assert_int_equal(api_reply_parse(line, strlen(line), &res, &err), 0);
	assert_string_equal(json_string_value(json_object_get(res, "state")), "paused");
	json_decref(res);
	free(line);
	line = api_reply_error(id, API_ERR_STATE, "the VM is off");
	assert_int_equal(api_reply_parse(line, strlen(line), &res, &err), -EREMOTEIO);
	assert_string_equal(err.code, API_ERR_STATE);
	assert_string_equal(err.message, "the VM is off");
	assert_null(res);
	free(line);
	assert_int_equal(api_reply_parse("{\"ok\":1}", 8, &res, &err), -EPROTO);
	assert_int_equal(api_reply_parse("garbage", 7, &res, &err), -EPROTO);
	json_decref(id);
}

static void framer_feed(struct api_framer *f, const char *s, size_t len)
{
	char *where;

	assert_true(api_framer_space(f, &where) >= len);
	memcpy(where, s, len);
	api_framer_commit(f, len);
}

static void test_framer(void **state)
{
	struct api_framer *f = malloc(sizeof(*f));
	const char *line;
	size_t len;
	char *where, *big;

	(void)state;
	assert_non_null(f);
	api_framer_init(f);
	framer_feed(f, "ab\ncd", 5);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_LINE);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "ab", 2);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_NONE);
	framer_feed(f, "e\n\nxyz", 6);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_LINE);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "cde", 3);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_LINE);
	assert_int_equal(len, 0);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_NONE);
	assert_int_equal(api_framer_pending(f, &line), 3);
	assert_memory_equal(line, "xyz", 3);

	/* A too-long line is dropped whole and reported once; the next one works. */
	api_framer_init(f);
	big = malloc(API_MAX_LINE);
	assert_non_null(big);
	memset(big, 'a', API_MAX_LINE);
	framer_feed(f, big, API_MAX_LINE);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_TOO_LONG);
	framer_feed(f, big, 1000);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_NONE);
	framer_feed(f, "aaa\nok\n", 7);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_LINE);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "ok", 2);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_NONE);
	/* The largest line that fits. */
	api_framer_init(f);
	big[API_MAX_LINE - 1] = '\n';
	framer_feed(f, big, API_MAX_LINE);
	assert_int_equal(api_framer_next(f, &line, &len), API_FRAME_LINE);
	assert_int_equal(len, API_MAX_LINE - 1);
	assert_int_equal(api_framer_space(f, &where), API_MAX_LINE);
	free(big);
	free(f);
}

/* The outbox keeps what a full socket did not take, in order, and gives it when read. */
static void test_outbox(void **state)
{
	struct api_outbox o = {0};
	char line[1000], got[API_OUTBOX_HOLD * 4];
	size_t total = 0, have = 0;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(api_outbox_send(&o, sv[0]), 0); /* nothing, no buffer */
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	/* Until the socket is full and more than API_OUTBOX_HOLD waits. */
	while (!api_outbox_held(&o)) {
		line[0] = (char)('a' + total % 26);
		assert_int_equal(api_outbox_add(&o, line, sizeof(line)), 0);
		assert_int_equal(api_outbox_send(&o, sv[0]), 0);
		total++;
	}
	/* The reader takes it all, in order, as the outbox sends the rest. */
	while (have < total * sizeof(line)) {
		ssize_t n = recv(sv[1], got + have % sizeof(got), sizeof(got) - have % sizeof(got),
		                 MSG_DONTWAIT);

		if (n > 0) {
			for (size_t j = have; j < have + (size_t)n; j++)
				if (j % sizeof(line) == 0)
					assert_int_equal(got[j % sizeof(got)],
					                 'a' + j / sizeof(line) % 26);
			have += (size_t)n;
		}
		assert_int_equal(api_outbox_send(&o, sv[0]), 0);
	}
	assert_int_equal(o.len, 0);
	assert_int_equal(api_outbox_add(&o, line, API_OUTBOX_MAX + 1), -E2BIG);
	close(sv[1]);
	assert_int_equal(api_outbox_add(&o, line, sizeof(line)), 0);
	assert_int_equal(api_outbox_send(&o, sv[0]), -EPIPE);
	api_outbox_clear(&o);
	assert_null(o.buf);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_def_parse_good),
		cmocka_unit_test(test_def_parse_errors),
		cmocka_unit_test(test_def_round_trip_every_field),
		cmocka_unit_test(test_def_old_format),
		cmocka_unit_test(test_def_nics),
		cmocka_unit_test(test_def_device_errors),
		cmocka_unit_test(test_def_validate_built),
		cmocka_unit_test(test_def_slots_stable),
		cmocka_unit_test(test_def_slots_full),
		cmocka_unit_test(test_def_to_config),
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_store_crud, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_locks, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_records, store_setup, store_teardown),
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_framer),
		cmocka_unit_test(test_outbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
