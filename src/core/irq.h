/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_IRQ_H
#define NESTVM_CORE_IRQ_H

/*
 * An interrupt line handed to a device model. The device only calls
 * irq_line_set(); what is behind it (KVM_IRQ_LINE on a GSI, or a recorder in
 * a unit test) is the creator's business.
 */
struct irq_line {
	void (*set)(void *opaque, unsigned int gsi, int level);
	void *opaque;
	unsigned int gsi;
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
	if (line && line->set)
		line->set(line->opaque, line->gsi, level);
}

#endif
