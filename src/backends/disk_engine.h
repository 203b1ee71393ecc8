/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_BACKENDS_DISK_ENGINE_H
#define NESTVM_BACKENDS_DISK_ENGINE_H

#include "backends/disk.h"

/* Helpers shared by the disk I/O engines (disk_uring.c, disk_threads.c). */

/* disk_iov_advance - drop the first @n bytes of @io's iovs (after a short transfer). */
void disk_iov_advance(struct disk_io *io, uint64_t n);

/* disk_finish - account @io as completed and run its done() with @result. */
void disk_finish(struct disk *disk, struct disk_io *io, int64_t result);

#endif
