/* SPDX-License-Identifier: MIT */
/* Unit tests: `nestvm run`'s --disk, --vsock and --console-port option parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backends/disk.h"
#include "cli/opts_virtio.h"

#include <errno.h>
#include <string.h>

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
	};

	return cmocka_run_group_tests_name("opts_virtio", tests, NULL, NULL);
}
