/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the VM manager: definition parsing and its error messages,
 * the store (create, list, load, save, remove, locks, records), the control
 * protocol's request validation, replies and line framing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "manager/protocol.h"
#include "manager/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	expect_def_error("{\"format\":3,\"name\":\"a\"}", "'format'", "newer", NULL);
	expect_def_error("{\"name\":\"a\",\"cpus\":1.5}", "'cpus'", NULL);
	expect_def_error("{\"name\":\"a\",\"nested\":\"yes\"}", "'nested'", "true or false", NULL);
	expect_def_error("{\"name\":\"a\",\"disks\":{}}", "'disks'", "array", NULL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_def_parse_good),
		cmocka_unit_test(test_def_parse_errors),
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_store_crud, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_locks, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_records, store_setup, store_teardown),
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_framer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
