/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the VM manager's parsers of untrusted input. A control
 * socket client may send anything (api_request_parse, the line framer), a
 * monitor's reply is read by the CLI (api_reply_parse), and a definition
 * file may be edited by hand (vm_def_parse). Each must return an error or a
 * valid result, never crash, leak or read out of bounds; what they accept
 * must survive a round trip.
 */
#include "manager/protocol.h"
#include "manager/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_request(const char *buf, size_t len)
{
	struct api_request req;
	struct api_error err;
	json_t *res;
	char *reply;

	if (api_request_parse(buf, len, &req, &err) == 0) {
		if ((unsigned int)req.cmd > API_CMD_MIGRATE_CANCEL ||
		    req.timeout_s > API_MAX_STOP_TIMEOUT)
			abort();
		/* migrate: both required fields, an absolute path, bounded numbers. */
		if (req.cmd == API_CMD_MIGRATE &&
		    (!req.to[0] || !req.secret_file || req.secret_file[0] != '/' ||
		     req.downtime_ms > API_MAX_DOWNTIME_MS ||
		     req.migrate_timeout_s > API_MAX_MIGRATE_TIMEOUT))
			abort();
		reply = api_reply_ok(req.id, json_pack("{s:s}", "cmd", api_cmd_name(req.cmd)));
		if (!reply || api_reply_parse(reply, strlen(reply), &res, &err) != 0)
			abort();
		json_decref(res);
	} else {
		if (!err.code || !memchr(err.message, '\0', sizeof(err.message)))
			abort();
		reply = api_reply_error(req.id, err.code, err.message);
		if (!reply || api_reply_parse(reply, strlen(reply), &res, &err) != -EREMOTEIO)
			abort();
	}
	free(reply);
	api_request_clear(&req);
}

/* The input as a byte stream, in chunks whose sizes come from the input. */
static void fuzz_stream(const uint8_t *data, size_t size)
{
	static struct api_framer f;
	size_t off = 0, step = size ? (data[0] % 64) + 1 : 1;

	api_framer_init(&f);
	while (off < size) {
		char *where;
		size_t room = api_framer_space(&f, &where), n = size - off;
		const char *line;
		size_t len;
		enum api_frame fr;

		if (n > step)
			n = step * 997; /* large and odd: lines straddle chunks */
		if (n > size - off)
			n = size - off;
		if (n > room)
			n = room;
		memcpy(where, data + off, n);
		api_framer_commit(&f, n);
		off += n;
		while ((fr = api_framer_next(&f, &line, &len)) != API_FRAME_NONE) {
			if (fr == API_FRAME_LINE) {
				if (len >= API_MAX_LINE || memchr(line, '\n', len))
					abort();
				fuzz_request(line, len);
			}
		}
	}
}

static void fuzz_definition(const char *buf, size_t len)
{
	struct vm_def def, again;
	struct mgr_err err;
	char *text;

	if (vm_def_parse(buf, len, "fuzz.json", &def, &err) != 0)
		return;
	text = vm_def_format(&def);
	if (!text || vm_def_parse(text, strlen(text), "again", &again, &err) != 0)
		abort();
	if (again.cpus != def.cpus || again.memory_mib != def.memory_mib ||
	    again.nr_disks != def.nr_disks || again.nr_nics != def.nr_nics ||
	    strcmp(again.kernel, def.kernel))
		abort();
	free(text);
	vm_def_clear(&def);
	vm_def_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_error err;
	json_t *res;

	fuzz_request((const char *)data, size);
	fuzz_stream(data, size);
	fuzz_definition((const char *)data, size);
	if (api_reply_parse((const char *)data, size, &res, &err) == 0 && !json_is_object(res))
		abort();
	json_decref(res);
	return 0;
}
