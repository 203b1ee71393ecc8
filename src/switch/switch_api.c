// SPDX-License-Identifier: MIT
/* A switch's control requests and replies (switch_api.h). */
#include "switch/switch_api.h"

#include <stdlib.h>
#include <string.h>

static void api_fail(struct switch_api_req *req, const char *code, const char *why)
{
	if (!req->code) {
		req->code = code;
		req->why = why;
	}
}

void switch_api_parse(const char *line, size_t len, struct switch_api_req *req)
{
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL), *v;
	const char *key, *cmd;

	memset(req, 0, sizeof(*req));
	if (!o) {
		api_fail(req, "parse-error", "the line is not JSON (or repeats a key)");
		return;
	}
	if (!json_is_object(o)) {
		api_fail(req, "invalid-request", "a request is a JSON object");
		json_decref(o);
		return;
	}
	v = json_object_get(o, "id");
	if (v && (json_is_integer(v) ||
	          (json_is_string(v) && json_string_length(v) <= SWITCH_API_MAX_ID)))
		req->id = json_incref(v);
	else if (v)
		api_fail(req, "invalid-request",
		         "'id' must be an integer or a string of at most 128 bytes");
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "cmd") && strcmp(key, "id"))
			api_fail(req, "invalid-request",
			         "unknown field (a request has cmd and id)");
	}
	cmd = json_string_value(json_object_get(o, "cmd"));
	if (!cmd)
		api_fail(req, "invalid-request", "a request has a string 'cmd'");
	else if (!strcmp(cmd, "status"))
		req->cmd = SWITCH_API_STATUS;
	else if (!strcmp(cmd, "stop"))
		req->cmd = SWITCH_API_STOP;
	else
		api_fail(req, "unknown-command", "commands: status, stop");
	json_decref(o);
}

void switch_api_req_clear(struct switch_api_req *req)
{
	json_decref(req->id);
	req->id = NULL;
}

char *switch_api_reply(const struct switch_api_req *req, json_t *result)
{
	json_t *reply;
	char *text, *line;
	size_t n;

	if (result)
		reply = json_pack("{s:b, s:o}", "ok", 1, "result", result);
	else
		reply = json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code",
		                  req->code ? req->code : "internal-error", "message",
		                  req->code ? req->why : "the switch failed to answer");
	if (reply && req->id)
		json_object_set(reply, "id", req->id);
	text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!text)
		return NULL;
	n = strlen(text);
	line = realloc(text, n + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}
