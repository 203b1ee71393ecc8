/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the unit tests of devices' save() and restore() (core/device.h):
 * a device's state bytes, a restore the way device_list_restore() does it,
 * and the refusals every state must get (every truncation, a byte too many),
 * each with a reason and without changing the device.
 */
#ifndef NESTVM_TESTS_UNIT_DEVICE_STATE_TEST_H
#define NESTVM_TESTS_UNIT_DEVICE_STATE_TEST_H

#include "core/device.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dst_save - @ops->save of @dev into @out (zeroed first); free it with ds_release(). */
static inline void dst_save(const struct device_ops *ops, void *dev, struct dev_state *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(ops->save(dev, out), 0);
	assert_int_equal(out->error, 0);
}

/*
 * dst_restore - restore @len bytes into @dev as device_list_restore() does
 * (restore, then dsi_finish). The reason of a refusal goes to @why.
 */
static inline int dst_restore(const struct device_ops *ops, void *dev, const void *buf, size_t len,
                              char *why, size_t why_len)
{
	struct dev_state_in in;
	int r;

	dsi_init(&in, buf, len);
	r = ops->restore(dev, &in, ops->version);
	if (r == 0)
		r = dsi_finish(&in);
	snprintf(why, why_len, "%s", in.why);
	return r;
}

/*
 * dst_expect_refused - restoring @buf into @dev fails with -EBADMSG and a
 * reason containing @fragment, and leaves @dev's saved state as it was in
 * its first @cmp_len bytes (all of them: SIZE_MAX).
 */
static inline void dst_expect_refused(const struct device_ops *ops, void *dev, const void *buf,
                                      size_t len, const char *fragment, size_t cmp_len)
{
	struct dev_state before, after;
	char why[160];
	int r;

	dst_save(ops, dev, &before);
	r = dst_restore(ops, dev, buf, len, why, sizeof(why));
	if (r != -EBADMSG || !strstr(why, fragment))
		print_error("expected a refusal with \"%s\", got %d \"%s\"\n", fragment, r, why);
	assert_int_equal(r, -EBADMSG);
	assert_true(why[0] != '\0');
	assert_non_null(strstr(why, fragment));
	dst_save(ops, dev, &after);
	assert_int_equal(before.len, after.len);
	if (cmp_len > before.len)
		cmp_len = before.len;
	assert_memory_equal(before.buf, after.buf, cmp_len);
	ds_release(&before);
	ds_release(&after);
}

/*
 * dst_expect_exact - @state (a saved state of @ops) is refused when cut
 * short anywhere or followed by a byte more; @dev must not change.
 */
static inline void dst_expect_exact(const struct device_ops *ops, void *dev,
                                    const struct dev_state *state, size_t cmp_len)
{
	uint8_t *longer = malloc(state->len + 1);

	assert_non_null(longer);
	for (size_t n = 0; n < state->len; n++)
		dst_expect_refused(ops, dev, state->buf, n, "ends early", cmp_len);
	memcpy(longer, state->buf, state->len);
	longer[state->len] = 0;
	dst_expect_refused(ops, dev, longer, state->len + 1, "left over", cmp_len);
	free(longer);
}

#endif
