// SPDX-License-Identifier: MIT
/*
 * A switch process's confinement (confine.h): the jail's uid range and
 * privilege drop (manager/jail.h), the monitor's Landlock and seccomp
 * machinery (core/sandbox.h) with a filter of the switch's own.
 */
#include "switch/confine.h"

#include "core/log.h"
#include "core/sandbox.h"
#include "manager/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The self-test hook exists only in sanitizer and debug builds, as the sandbox's. */
#if defined(__SANITIZE_ADDRESS__) || defined(NESTVM_DEBUG)
#define CONFINE_SELFTEST 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFINE_SELFTEST 1
#endif
#endif

/* libslirp reads the host's resolvers here when a guest asks its DNS address. */
#define CONFINE_RESOLV_CONF "/etc/resolv.conf"

/*
 * Step 1's first half, as root: the switch's own uid of the jail range, and
 * its directory given to it.
 */
static int confine_user_prepare(const char *home, const char *name, const char *dir,
                                struct switch_confinement *c)
{
	struct store vms = {0};
	struct mgr_err err;
	uid_t uid;
	int dfd, r;

	if (snprintf(vms.home, sizeof(vms.home), "%s", home) >= (int)sizeof(vms.home))
		return -ENAMETOOLONG;
	r = jail_switch_uid_get(&vms, name, &uid, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r;
	}
	/*
	 * Its directory only, as the jail gives a VM's: it replaces leases.json
	 * and runtime.json there and removes its sockets at exit (through the
	 * descriptor it holds: the store above is root's, 0700). The files in
	 * it keep their owner; switch.json and lock stay root's (a definition
	 * the switch's user wrote is refused, switch_store_read()).
	 */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fchown(dfd, uid, (gid_t)uid) < 0) {
		r = -errno;
		log_error("cannot give '%s' to the switch's user %u: %s", dir, (unsigned int)uid,
		          strerror(-r));
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	close(dfd);
	c->uid = uid;
	c->gid = (gid_t)uid;
	return 0;
}

/* Step 1's second half: become that user (after Landlock, which needs the paths). */
static int confine_user_drop(struct switch_confinement *c)
{
	struct mgr_err err;
	int r = jail_drop(c->uid, c->gid, &err);

	if (r < 0) {
		log_error("%s", err.msg);
		return r;
	}
	c->user = true;
	return 0;
}

/*
 * A file outside the directory must not be made (tests/integration/switch.sh).
 * Making, not reading: a sanitizer build's Landlock lets it read anything (a
 * report's symbolizer), never write outside.
 */
static void confine_selftest(void)
{
#ifdef CONFINE_SELFTEST
	const char *path = getenv("NESTVM_SWITCH_SELFTEST_CREATE");
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	log_warn("sandbox self-test: create '%s': %s", path, fd >= 0 ? "allowed" : strerror(errno));
	if (fd >= 0)
		close(fd);
#endif
}

int switch_confine(const char *home, const char *name, const char *dir, bool nat,
                   struct switch_confinement *c)
{
	const char *dirs[] = {dir, NULL};
	const char *files[] = {nat ? CONFINE_RESOLV_CONF : NULL, NULL};
	struct sandbox_state sb;
	struct jail j = {0};
	bool drop;
	int r;

	memset(c, 0, sizeof(*c));
	c->owner = geteuid();
	c->uid = geteuid();
	c->gid = getegid();
	r = sandbox_init(true);
	if (r < 0) {
		log_error("sandbox: cannot prepare the switch's filter: %s", strerror(-r));
		return r;
	}
	drop = jail_wanted(&j);
	if (drop) {
		r = confine_user_prepare(home, name, dir, c);
		if (r < 0)
			return r;
	} else {
		snprintf(c->user_off, sizeof(c->user_off), "%s", j.off_reason);
	}
	/* Also with the sandbox off: nothing the switch runs may gain privileges. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		log_error("no_new_privs: %s", strerror(-r));
		return r;
	}
	/* Landlock opens the paths: before the new user, who cannot pass the store's 0700. */
	r = sandbox_restrict_files(dirs, files);
	if (r < 0) {
		log_error("landlock: cannot limit the switch to '%s': %s", dir, strerror(-r));
		return r;
	}
	if (drop) {
		r = confine_user_drop(c);
		if (r < 0)
			return r;
	}
	sandbox_get_state(&sb);
	c->landlock = sb.landlock_files;
	c->seccomp = sb.seccomp;
	c->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
	confine_selftest();
	/* Last: the filter allows neither landlock_restrict_self(), setresuid() nor prctl(). */
	sandbox_enter(SANDBOX_SWITCH, "switch");
	log_info("sandbox: seccomp %s, landlock %s, no_new_privs%s; user %u%s%s%s",
	         c->seccomp ? "on" : "off", c->landlock ? "on (its directory)" : "off",
	         c->no_new_privs ? "" : " off", (unsigned int)c->uid,
	         c->user ? " (its own, no capabilities)" : " (", c->user ? "" : c->user_off,
	         c->user ? "" : ")");
	return 0;
}

json_t *switch_confine_json(const struct switch_confinement *c)
{
	json_t *o = json_pack("{s:b, s:b, s:b, s:b, s:I, s:I}", "seccomp", c->seccomp, "landlock",
	                      c->landlock, "no_new_privs", c->no_new_privs, "own_user", c->user,
	                      "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid);

	if (o && !c->user)
		json_object_set_new(o, "user_reason", json_string(c->user_off));
	return o;
}
