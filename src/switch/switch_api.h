/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_SWITCH_API_H
#define NESTVM_SWITCH_SWITCH_API_H

/*
 * The requests and replies of a switch's control socket (docs/api.md,
 * "Switches"): one JSON object per line, {"cmd": "status"|"stop", "id": ...},
 * answered {"ok": true, "result": ...} or {"ok": false, "error": {"code",
 * "message"}}, with the request's id. Lines come from any process of the
 * switch's user: parsed here, fuzzed (fuzz_switch_dhcp).
 */

#include <jansson.h>
#include <stddef.h>

#define SWITCH_API_MAX_ID 128

enum switch_api_cmd { SWITCH_API_STATUS, SWITCH_API_STOP };

struct switch_api_req {
	enum switch_api_cmd cmd;
	json_t *id;       /* a reference of ours, or NULL */
	const char *code; /* NULL: a valid request; else the error reply's code */
	const char *why;  /* the error's message */
};

/* switch_api_parse - the request line of @len bytes (no newline) into @req. */
void switch_api_parse(const char *line, size_t len, struct switch_api_req *req);

/* switch_api_req_clear - drop @req's id. */
void switch_api_req_clear(struct switch_api_req *req);

/*
 * switch_api_reply - the reply line (malloc'd, newline and NUL ended) to
 * @req: @result (taken) if not NULL, else @req's error (or an internal
 * error). NULL when out of memory.
 */
char *switch_api_reply(const struct switch_api_req *req, json_t *result);

#endif
