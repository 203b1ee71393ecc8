/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for a nestvm x86-64 VM.
 *
 * References: ACPI 6.4 §5.2 (tables), §6 (device objects and resource
 * descriptors), §20 (AML encoding); PCI Firmware Specification 3.2 §4.1.2
 * (MCFG).
 *
 * Everything goes front to back through one bounds-checked writer. A table
 * is written after every table it points to, so no pointer is patched later;
 * only the RSDP, which must be first, is filled in at the end:
 *
 *   RSDP | FACS | DSDT | FADT | MADT | MCFG | XSDT | RSDT
 *
 * Fixed-layout tables are packed structs filled on the stack and copied in
 * (the host is x86, so little endian like ACPI). The DSDT is AML, produced
 * by the small aml_*() emitter below: add a device by writing another
 * dsdt_*() function with it.
 */
#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ACPI tables are little endian");

#define ACPI_4GIB 0x100000000ULL

/* Identification in every table header (§5.2.6). */
#define ACPI_OEM_ID "NESTVM"         /* 6 characters */
#define ACPI_OEM_TABLE_ID "NESTVM  " /* 8 characters */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "NSTV" /* the "ASL compiler" is nestvm itself */
#define ACPI_CREATOR_REVISION 1

/* §5.2.5.3: the RSDP is found by scanning for its signature on 16-byte boundaries. */
#define ACPI_RSDP_SIGNATURE "RSD PTR "
#define ACPI_RSDP_ALIGN 16
#define ACPI_RSDP_REVISION 2   /* ACPI 2.0 and later: has the XSDT */
#define ACPI_RSDP_V1_LENGTH 20 /* bytes covered by the first checksum */
#define ACPI_FACS_ALIGN 64     /* §5.2.10 */
#define ACPI_TABLE_ALIGN 8     /* not required; keeps 64-bit fields aligned */

/* Table revisions as of ACPI 6.4. */
#define ACPI_RSDT_REVISION 1
#define ACPI_XSDT_REVISION 1
#define ACPI_FADT_REVISION 6
#define ACPI_FADT_MINOR_VERSION 4 /* FADT 6.4 */
#define ACPI_FACS_VERSION 2
#define ACPI_DSDT_REVISION 2 /* 2 and up: AML integers are 64 bits (§5.2.11.1) */
#define ACPI_MADT_REVISION 5
#define ACPI_MCFG_REVISION 1

/* §5.2.5.3 Root System Description Pointer (RSDP) Structure */
struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first ACPI_RSDP_V1_LENGTH bytes */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over the whole structure */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");

/* §5.2.6 System Description Table Header */
struct acpi_header {
	char signature[4];
	uint32_t length; /* of the whole table, header included */
	uint8_t revision;
	uint8_t checksum; /* the whole table sums to 0 */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "table header");

/* §5.2.3.2 Generic Address Structure (GAS) */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");

#define ACPI_GAS_SPACE_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_BYTE 1
#define ACPI_GAS_ACCESS_WORD 2
#define ACPI_GAS_ACCESS_DWORD 3

/* §5.2.9 Fixed ACPI Description Table (FADT), signature "FACP" */
struct acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t fadt_minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_identity;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT");

#define ACPI_PM_PROFILE_UNSPECIFIED 0

/* Register block lengths (§4.8.3): PM1 event = 2-byte status + 2-byte enable. */
#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_LEN 4

/* §5.2.9: latencies above these mean "C2/C3 not supported". */
#define ACPI_P_LVL2_LAT_NONE 101
#define ACPI_P_LVL3_LAT_NONE 1001

/* §5.2.9.3 IA-PC Boot Architecture Flags */
#define ACPI_IAPC_BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define ACPI_IAPC_BOOT_ARCH_8042 (1u << 1)
#define ACPI_IAPC_BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)

/* §5.2.9 Fixed ACPI Description Table Fixed Feature Flags */
#define ACPI_FADT_WBINVD (1u << 0)
#define ACPI_FADT_PROC_C1 (1u << 2)
#define ACPI_FADT_PWR_BUTTON (1u << 4)
#define ACPI_FADT_SLP_BUTTON (1u << 5)
#define ACPI_FADT_FIX_RTC (1u << 6)
#define ACPI_FADT_TMR_VAL_EXT (1u << 8)
#define ACPI_FADT_RESET_REG_SUP (1u << 10)

/* The value for PORT_RESET (the PIIX reset control register): SYS_RST | RST_CPU. */
#define ACPI_RESET_VALUE 0x06

/* §5.2.10 Firmware ACPI Control Structure (FACS); it has no checksum. */
struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");

/* §5.2.12 Multiple APIC Description Table (MADT), signature "APIC" */
struct acpi_madt {
	struct acpi_header header;
	uint32_t local_apic_address;
	uint32_t flags;
} __attribute__((packed));

#define ACPI_MADT_PCAT_COMPAT (1u << 0) /* dual 8259s present, to be masked */

#define ACPI_MADT_TYPE_LOCAL_APIC 0
#define ACPI_MADT_TYPE_IO_APIC 1
#define ACPI_MADT_TYPE_INTERRUPT_SOURCE_OVERRIDE 2
#define ACPI_MADT_TYPE_LOCAL_APIC_NMI 4

/* §5.2.12.2 Processor Local APIC Structure */
struct acpi_madt_local_apic {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt_local_apic) == 8, "MADT local APIC");

#define ACPI_MADT_LAPIC_ENABLED (1u << 0)

/* §5.2.12.3 I/O APIC Structure */
struct acpi_madt_io_apic {
	uint8_t type;
	uint8_t length;
	uint8_t io_apic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt_io_apic) == 12, "MADT I/O APIC");

/* §5.2.12.5 Interrupt Source Override Structure */
struct acpi_madt_interrupt_override {
	uint8_t type;
	uint8_t length;
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags; /* MPS INTI flags */
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt_interrupt_override) == 10, "MADT override");

#define ACPI_MADT_BUS_ISA 0

/* §5.2.12.5 MPS INTI Flags */
#define ACPI_MPS_INTI_POLARITY_ACTIVE_HIGH (1u << 0)
#define ACPI_MPS_INTI_TRIGGER_EDGE (1u << 2)
#define ACPI_MPS_INTI_TRIGGER_LEVEL (3u << 2)

/* §5.2.12.7 Local APIC NMI Structure */
struct acpi_madt_local_apic_nmi {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint16_t flags; /* MPS INTI flags */
	uint8_t lint;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt_local_apic_nmi) == 6, "MADT local APIC NMI");

#define ACPI_PROCESSOR_UID_ALL 0xff
#define ACPI_LINT1 1

/* PCI Firmware Specification 3.2 §4.1.2 MCFG Table Description */
struct acpi_mcfg {
	struct acpi_header header;
	uint8_t reserved[8];
} __attribute__((packed));

struct acpi_mcfg_allocation {
	uint64_t base_address;
	uint16_t segment;
	uint8_t start_bus;
	uint8_t end_bus;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_mcfg_allocation) == 16, "MCFG allocation");

/* PCI Express Base 5.0 §7.2.2: ECAM gives each bus 1 MiB of configuration space. */
#define ECAM_BUS_SHIFT 20

/* PCI configuration mechanism #1 owns ports 0xCF8-0xCFF. */
#define PCI_CONFIG_PORTS_LEN 8

/*
 * The writer: a window of the caller's buffer filled front to back. Any
 * failure sets err and turns every later call into a no-op, so builders do
 * not check each step; acpi_build() checks err once at the end.
 */
struct acpi_writer {
	uint8_t *buf;
	size_t size;
	size_t len;   /* bytes written */
	uint64_t gpa; /* guest-physical address of buf[0] */
	int err;      /* first error, 0 if none */
};

static void w_fail(struct acpi_writer *w, int err)
{
	if (!w->err)
		w->err = err;
}

/* w_reserve - append @n zero bytes; returns them, or NULL if they do not fit. */
static uint8_t *w_reserve(struct acpi_writer *w, size_t n)
{
	uint8_t *p;

	if (w->err)
		return NULL;
	if (n > w->size - w->len) {
		w_fail(w, -ENOSPC);
		return NULL;
	}
	p = w->buf + w->len;
	memset(p, 0, n);
	w->len += n;
	return p;
}

static void w_put(struct acpi_writer *w, const void *data, size_t n)
{
	uint8_t *p = w_reserve(w, n);

	if (p)
		memcpy(p, data, n);
}

/* w_put_le - append the low @n bytes of @v, little endian. */
static void w_put_le(struct acpi_writer *w, uint64_t v, size_t n)
{
	uint8_t *p = w_reserve(w, n);
	size_t i;

	for (i = 0; p && i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void w_put8(struct acpi_writer *w, uint8_t v)
{
	w_put_le(w, v, 1);
}

/* w_insert - insert @n bytes at offset @at, moving what follows up. */
static void w_insert(struct acpi_writer *w, size_t at, const uint8_t *data, size_t n)
{
	size_t tail = w->len - at;

	if (!w_reserve(w, n))
		return;
	memmove(w->buf + at + n, w->buf + at, tail);
	memcpy(w->buf + at, data, n);
}

/* w_align - pad with zeros until the guest-physical address is a multiple of @align. */
static void w_align(struct acpi_writer *w, uint64_t align)
{
	w_reserve(w, (align - (w->gpa + w->len) % align) % align);
}

static uint8_t acpi_checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum += *p++;
	return (uint8_t)-sum;
}

static void acpi_header_init(struct acpi_header *h, const char *signature, uint8_t revision)
{
	memcpy(h->signature, signature, sizeof(h->signature));
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, sizeof(h->oem_id));
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, sizeof(h->oem_table_id));
	h->oem_revision = ACPI_OEM_REVISION;
	memcpy(h->creator_id, ACPI_CREATOR_ID, sizeof(h->creator_id));
	h->creator_revision = ACPI_CREATOR_REVISION;
}

/*
 * table_end - finish the table whose header starts at offset @start: set
 * Length to everything written since and make the bytes sum to 0.
 * Returns the table's guest-physical address (0 after an error).
 */
static uint64_t table_end(struct acpi_writer *w, size_t start)
{
	uint8_t *t = w->buf + start;
	uint32_t len = (uint32_t)(w->len - start);

	if (w->err)
		return 0;
	memcpy(t + offsetof(struct acpi_header, length), &len, sizeof(len));
	t[offsetof(struct acpi_header, checksum)] = 0;
	t[offsetof(struct acpi_header, checksum)] = acpi_checksum(t, len);
	return w->gpa + start;
}

/*
 * AML (ACPI 6.4 §20.2). The emitter writes definition blocks as a compiler
 * would for the equivalent ASL:
 *
 *   size_t dev = aml_device_begin(w, "COM1");     Device (COM1) {
 *   aml_name_eisaid(w, "_HID", "PNP0501");          Name (_HID, EisaId ("PNP0501"))
 *   aml_end(w, dev);                              }
 *
 * A *_begin() returns where the object's PkgLength goes; aml_end() encodes
 * the length once the contents are known and inserts it there.
 */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* follows AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR '\\'
#define AML_NAME_SEG_LEN 4
#define AML_NAME_PAD '_'

/* §20.2.4: a PkgLength of 1 to 4 bytes encodes up to 2^28 - 1. */
#define AML_PKG_LENGTH_MAX ((1u << 28) - 1)

/*
 * aml_name_string - a NameString (§20.2.2) from "\\_SB.PCI0"-style text:
 * an optional leading '\' for the root, then dot-separated segments of up
 * to four characters, padded with '_'.
 */
static void aml_name_string(struct acpi_writer *w, const char *path)
{
	unsigned int nr_segs = 1;
	const char *p;

	if (*path == AML_ROOT_CHAR) {
		w_put8(w, AML_ROOT_CHAR);
		path++;
	}
	for (p = path; *p; p++)
		nr_segs += *p == '.';
	if (nr_segs == 2) {
		w_put8(w, AML_DUAL_NAME_PREFIX);
	} else if (nr_segs > 2) {
		w_put8(w, AML_MULTI_NAME_PREFIX);
		w_put8(w, (uint8_t)nr_segs);
	}
	for (p = path;; p++) {
		char seg[AML_NAME_SEG_LEN];
		size_t n = strcspn(p, ".");

		if (n == 0 || n > AML_NAME_SEG_LEN) {
			w_fail(w, -EINVAL);
			return;
		}
		memset(seg, AML_NAME_PAD, sizeof(seg));
		memcpy(seg, p, n);
		w_put(w, seg, sizeof(seg));
		p += n;
		if (!*p)
			break;
	}
}

/* aml_encode_integer - the shortest ComputationalData for @v (§20.2.3); returns its length. */
static size_t aml_encode_integer(uint8_t out[9], uint64_t v)
{
	size_t n, i;

	if (v == 0 || v == 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= UINT8_MAX) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= UINT16_MAX) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= UINT32_MAX) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	for (i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

static void aml_integer(struct acpi_writer *w, uint64_t v)
{
	uint8_t enc[9];

	w_put(w, enc, aml_encode_integer(enc, v));
}

static void aml_string(struct acpi_writer *w, const char *s)
{
	w_put8(w, AML_STRING_PREFIX);
	w_put(w, s, strlen(s) + 1);
}

static unsigned int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned int)(c - '0');
	if (c >= 'A' && c <= 'F')
		return (unsigned int)(c - 'A' + 10);
	return 16;
}

/*
 * aml_eisaid - a PNP id such as "PNP0A08" as a compressed EISA id (ACPI 6.4
 * §6.1.5 _HID, and the ASL EisaId macro): three letters of five bits each
 * ('A' = 1) and four hex digits, stored big endian in a DWord.
 */
static void aml_eisaid(struct acpi_writer *w, const char *id)
{
	uint32_t v = 0;
	int i;

	if (strlen(id) != 7) {
		w_fail(w, -EINVAL);
		return;
	}
	for (i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			w_fail(w, -EINVAL);
			return;
		}
		v = v << 5 | (uint32_t)(id[i] - 'A' + 1);
	}
	for (i = 3; i < 7; i++) {
		if (hex_digit(id[i]) > 15) {
			w_fail(w, -EINVAL);
			return;
		}
		v = v << 4 | hex_digit(id[i]);
	}
	w_put8(w, AML_DWORD_PREFIX);
	w_put_le(w, __builtin_bswap32(v), 4);
}

/*
 * aml_end - close the Scope, Device, Package or Buffer begun at @start:
 * insert the PkgLength (§20.2.4), which counts its own bytes too.
 */
static void aml_end(struct acpi_writer *w, size_t start)
{
	uint8_t enc[4];
	size_t body, n, i, total;

	if (w->err)
		return;
	body = w->len - start;
	for (n = 1; n < 4; n++) {
		/* One byte holds 6 bits; a longer encoding 4 + 8 per extra byte. */
		if (body + n < (n == 1 ? 1u << 6 : 1u << (4 + 8 * (n - 1))))
			break;
	}
	total = body + n;
	if (total > AML_PKG_LENGTH_MAX) {
		w_fail(w, -ENOSPC);
		return;
	}
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
		for (i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	w_insert(w, start, enc, n);
}

/* DefScope (§20.2.5.1): Scope (name) { ... } */
static size_t aml_scope_begin(struct acpi_writer *w, const char *name)
{
	size_t start;

	w_put8(w, AML_SCOPE_OP);
	start = w->len;
	aml_name_string(w, name);
	return start;
}

/* DefDevice (§20.2.5.2): Device (name) { ... } */
static size_t aml_device_begin(struct acpi_writer *w, const char *name)
{
	size_t start;

	w_put8(w, AML_EXT_OP_PREFIX);
	w_put8(w, AML_DEVICE_OP);
	start = w->len;
	aml_name_string(w, name);
	return start;
}

/* DefPackage (§20.2.5.4): Package (nr_elements) { ... } */
static size_t aml_package_begin(struct acpi_writer *w, uint8_t nr_elements)
{
	size_t start;

	w_put8(w, AML_PACKAGE_OP);
	start = w->len;
	w_put8(w, nr_elements);
	return start;
}

/* DefName (§20.2.5.1): Name (name, ...); the caller appends the object. */
static void aml_name(struct acpi_writer *w, const char *name)
{
	w_put8(w, AML_NAME_OP);
	aml_name_string(w, name);
}

static void aml_name_integer(struct acpi_writer *w, const char *name, uint64_t v)
{
	aml_name(w, name);
	aml_integer(w, v);
}

static void aml_name_string_obj(struct acpi_writer *w, const char *name, const char *s)
{
	aml_name(w, name);
	aml_string(w, s);
}

static void aml_name_eisaid(struct acpi_writer *w, const char *name, const char *id)
{
	aml_name(w, name);
	aml_eisaid(w, id);
}

/*
 * Resource templates: a Buffer (§20.2.5.4 DefBuffer) of resource
 * descriptors (§6.4) closed by an End Tag. aml_restemplate_end() adds the
 * End Tag, then the BufferSize and PkgLength in front.
 */
#define ACPI_RES_SMALL(name, len) ((uint8_t)((name) << 3 | (len)))
#define ACPI_RES_LARGE(name) ((uint8_t)(0x80 | (name)))

#define ACPI_RES_IRQ ACPI_RES_SMALL(0x04, 2)         /* §6.4.2.1, no flags byte */
#define ACPI_RES_IO ACPI_RES_SMALL(0x08, 7)          /* §6.4.2.5 */
#define ACPI_RES_END_TAG ACPI_RES_SMALL(0x0f, 1)     /* §6.4.2.9 */
#define ACPI_RES_MEMORY32_FIXED ACPI_RES_LARGE(0x06) /* §6.4.3.4 */
#define ACPI_RES_DWORD_ADDRESS ACPI_RES_LARGE(0x07)  /* §6.4.3.5.2 */
#define ACPI_RES_WORD_ADDRESS ACPI_RES_LARGE(0x08)   /* §6.4.3.5.3 */
#define ACPI_RES_QWORD_ADDRESS ACPI_RES_LARGE(0x0a)  /* §6.4.3.5.1 */

#define ACPI_RES_IO_DECODE16 (1u << 0)
#define ACPI_RES_MEMORY_READ_WRITE (1u << 0)

/* §6.4.3.5: Resource Type, General Flags and Type Specific Flags of address descriptors. */
#define ACPI_RES_TYPE_MEMORY 0
#define ACPI_RES_TYPE_IO 1
#define ACPI_RES_TYPE_BUS_NUMBER 2
#define ACPI_RES_PRODUCER 0          /* bit 0 clear: a bridge window */
#define ACPI_RES_MIN_FIXED (1u << 2) /* _MIF */
#define ACPI_RES_MAX_FIXED (1u << 3) /* _MAF */
#define ACPI_RES_MEM_NON_CACHEABLE (0u << 1)
#define ACPI_RES_MEM_CACHEABLE (1u << 1)
#define ACPI_RES_IO_ENTIRE_RANGE 3 /* _RNG: ISA and non-ISA ranges */

static size_t aml_restemplate_begin(struct acpi_writer *w)
{
	w_put8(w, AML_BUFFER_OP);
	return w->len;
}

static void aml_restemplate_end(struct acpi_writer *w, size_t start)
{
	uint8_t size[9];

	w_put8(w, ACPI_RES_END_TAG);
	w_put8(w, 0); /* checksum 0: "treat as valid" */
	if (w->err)
		return;
	w_insert(w, start, size, aml_encode_integer(size, w->len - start));
	aml_end(w, start);
}

/* I/O Port Descriptor (§6.4.2.5): IO (Decode16, min, max, align, len) */
static void aml_res_io(struct acpi_writer *w, uint16_t min, uint16_t max, uint8_t align,
		       uint8_t len)
{
	w_put8(w, ACPI_RES_IO);
	w_put8(w, ACPI_RES_IO_DECODE16);
	w_put_le(w, min, 2);
	w_put_le(w, max, 2);
	w_put8(w, align);
	w_put8(w, len);
}

/* IRQ Descriptor (§6.4.2.1): IRQNoFlags () {irq}, i.e. edge, active high, exclusive */
static void aml_res_irq(struct acpi_writer *w, unsigned int irq)
{
	w_put8(w, ACPI_RES_IRQ);
	w_put_le(w, 1u << irq, 2);
}

/* 32-bit Fixed Memory Range Descriptor (§6.4.3.4): Memory32Fixed (ReadWrite, base, len) */
static void aml_res_memory32_fixed(struct acpi_writer *w, uint32_t base, uint32_t len)
{
	w_put8(w, ACPI_RES_MEMORY32_FIXED);
	w_put_le(w, 9, 2);
	w_put8(w, ACPI_RES_MEMORY_READ_WRITE);
	w_put_le(w, base, 4);
	w_put_le(w, len, 4);
}

/*
 * Word, DWord or QWord Address Space Descriptor (§6.4.3.5.1-3) for a bridge
 * window [min, max] of @type: @bytes (2, 4 or 8) is the field width. The
 * window is fixed (_MIF, _MAF, granularity 0) and untranslated.
 */
static void aml_res_window(struct acpi_writer *w, size_t bytes, uint8_t type, uint8_t type_flags,
			   uint64_t min, uint64_t max)
{
	uint8_t tag = ACPI_RES_QWORD_ADDRESS;

	if (bytes == 2)
		tag = ACPI_RES_WORD_ADDRESS;
	else if (bytes == 4)
		tag = ACPI_RES_DWORD_ADDRESS;
	w_put8(w, tag);
	w_put_le(w, 3 + 5 * bytes, 2); /* flags, then _GRA _MIN _MAX _TRA _LEN */
	w_put8(w, type);
	w_put8(w, ACPI_RES_PRODUCER | ACPI_RES_MIN_FIXED | ACPI_RES_MAX_FIXED);
	w_put8(w, type_flags);
	w_put_le(w, 0, bytes);
	w_put_le(w, min, bytes);
	w_put_le(w, max, bytes);
	w_put_le(w, 0, bytes);
	w_put_le(w, max - min + 1, bytes);
}

/*
 * dsdt_cpus - one processor device per CPU (§8.4: Device with _HID
 * "ACPI0007"); _UID matches the MADT's ACPI Processor UID.
 */
static void dsdt_cpus(struct acpi_writer *w, unsigned int nr_cpus)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned int i;

	for (i = 0; i < nr_cpus; i++) {
		char name[] = {'C', hex[(i >> 8) & 0xf], hex[(i >> 4) & 0xf], hex[i & 0xf], '\0'};
		size_t dev = aml_device_begin(w, name);

		aml_name_string_obj(w, "_HID", "ACPI0007");
		aml_name_integer(w, "_UID", i);
		aml_end(w, dev);
	}
}

/*
 * dsdt_pci0 - the PCI Express root bridge (§6.5.5 _BBN, §6.5.6 _SEG).
 * Its _CRS lists the windows it forwards: the ECAM's buses, all I/O ports
 * except the configuration ports (which it consumes), and the MMIO windows.
 */
static void dsdt_pci0(struct acpi_writer *w, const struct acpi_config *cfg)
{
	size_t dev, crs;

	dev = aml_device_begin(w, "PCI0");
	aml_name_eisaid(w, "_HID", "PNP0A08"); /* PCI Express root bridge */
	aml_name_eisaid(w, "_CID", "PNP0A03"); /* ... which is a PCI root bridge */
	aml_name_integer(w, "_SEG", 0);
	aml_name_integer(w, "_BBN", 0);
	aml_name_integer(w, "_UID", 0);
	aml_name(w, "_CRS");
	crs = aml_restemplate_begin(w);
	aml_res_window(w, 2, ACPI_RES_TYPE_BUS_NUMBER, 0, 0, cfg->ecam_end_bus);
	aml_res_io(w, PORT_PCI_CONFIG_ADDR, PORT_PCI_CONFIG_ADDR, 1, PCI_CONFIG_PORTS_LEN);
	aml_res_window(w, 2, ACPI_RES_TYPE_IO, ACPI_RES_IO_ENTIRE_RANGE, 0,
	               PORT_PCI_CONFIG_ADDR - 1);
	aml_res_window(w, 2, ACPI_RES_TYPE_IO, ACPI_RES_IO_ENTIRE_RANGE,
	               PORT_PCI_CONFIG_ADDR + PCI_CONFIG_PORTS_LEN, UINT16_MAX);
	if (cfg->mmio32_size)
		aml_res_window(w, 4, ACPI_RES_TYPE_MEMORY,
		               ACPI_RES_MEM_NON_CACHEABLE | ACPI_RES_MEMORY_READ_WRITE,
		               cfg->mmio32_base, cfg->mmio32_base + cfg->mmio32_size - 1);
	if (cfg->mmio64_size)
		aml_res_window(w, 8, ACPI_RES_TYPE_MEMORY,
		               ACPI_RES_MEM_CACHEABLE | ACPI_RES_MEMORY_READ_WRITE,
		               cfg->mmio64_base, cfg->mmio64_base + cfg->mmio64_size - 1);
	aml_restemplate_end(w, crs);
	aml_end(w, dev);
}

/*
 * dsdt_ecam - a motherboard resource device (PNP0C02) claiming the ECAM.
 * Linux uses the MCFG only if the ECAM is reserved, by e820 or here.
 */
static void dsdt_ecam(struct acpi_writer *w, const struct acpi_config *cfg)
{
	size_t dev, crs;

	dev = aml_device_begin(w, "ECAM");
	aml_name_eisaid(w, "_HID", "PNP0C02");
	aml_name_integer(w, "_UID", 0);
	aml_name(w, "_CRS");
	crs = aml_restemplate_begin(w);
	aml_res_memory32_fixed(w, (uint32_t)cfg->ecam_base,
	                       ((uint32_t)cfg->ecam_end_bus + 1) << ECAM_BUS_SHIFT);
	aml_restemplate_end(w, crs);
	aml_end(w, dev);
}

/* dsdt_com1 - the 16550 UART at PORT_COM1 on IRQ_COM1. */
static void dsdt_com1(struct acpi_writer *w)
{
	size_t dev, crs;

	dev = aml_device_begin(w, "COM1");
	aml_name_eisaid(w, "_HID", "PNP0501"); /* 16550A-compatible serial port */
	aml_name_integer(w, "_UID", 1);
	aml_name(w, "_CRS");
	crs = aml_restemplate_begin(w);
	aml_res_io(w, PORT_COM1, PORT_COM1, 1, 8);
	aml_res_irq(w, IRQ_COM1);
	aml_restemplate_end(w, crs);
	aml_end(w, dev);
}

/*
 * build_dsdt - the Differentiated System Description Table (§5.2.11.1):
 *
 *   Name (_S5, Package (4) { SLP_TYP, SLP_TYP, 0, 0 })   // §7.4.2, soft off
 *   Scope (\_SB) { C000.., PCI0, ECAM, COM1 }
 */
static uint64_t build_dsdt(struct acpi_writer *w, const struct acpi_config *cfg)
{
	struct acpi_header h = {0};
	size_t start = w->len, pkg, sb;

	acpi_header_init(&h, "DSDT", ACPI_DSDT_REVISION);
	w_put(w, &h, sizeof(h));

	/* PM1a_CNT.SLP_TYP and PM1b_CNT.SLP_TYP for S5, then two reserved. */
	aml_name(w, "_S5");
	pkg = aml_package_begin(w, 4);
	aml_integer(w, ACPI_S5_SLP_TYP);
	aml_integer(w, ACPI_S5_SLP_TYP);
	aml_integer(w, 0);
	aml_integer(w, 0);
	aml_end(w, pkg);

	sb = aml_scope_begin(w, "\\_SB");
	dsdt_cpus(w, cfg->nr_cpus);
	dsdt_pci0(w, cfg);
	dsdt_ecam(w, cfg);
	dsdt_com1(w);
	aml_end(w, sb);

	return table_end(w, start);
}

/* build_facs - §5.2.10; the OS owns its contents, nestvm has no global lock or S3. */
static uint64_t build_facs(struct acpi_writer *w)
{
	struct acpi_facs f = {0};
	uint64_t addr;

	memcpy(f.signature, "FACS", sizeof(f.signature));
	f.length = sizeof(f);
	f.version = ACPI_FACS_VERSION;
	w_align(w, ACPI_FACS_ALIGN);
	addr = w->gpa + w->len;
	w_put(w, &f, sizeof(f));
	return addr;
}

static struct acpi_gas gas_io(uint16_t port, uint8_t len, uint8_t access_size)
{
	return (struct acpi_gas){
	    .space_id = ACPI_GAS_SPACE_SYSTEM_IO,
	    .bit_width = (uint8_t)(len * 8),
	    .access_size = access_size,
	    .address = port,
	};
}

/*
 * build_fadt - §5.2.9. A full (not hardware-reduced) ACPI platform, since
 * the VM has an i8042, an RTC and a UART: fixed PM registers, the SCI on an
 * ISA IRQ, and the PIIX-style reset register.
 */
static uint64_t build_fadt(struct acpi_writer *w, uint64_t facs, uint64_t dsdt)
{
	struct acpi_fadt f = {0};
	size_t start;

	acpi_header_init(&f.header, "FACP", ACPI_FADT_REVISION);
	/* Both the 32-bit and the X_ pointers: OSPM prefers X_, older OSes read the others. */
	f.firmware_ctrl = (uint32_t)facs;
	f.dsdt = (uint32_t)dsdt;
	f.x_firmware_ctrl = facs;
	f.x_dsdt = dsdt;
	f.preferred_pm_profile = ACPI_PM_PROFILE_UNSPECIFIED;
	f.sci_int = IRQ_ACPI_SCI;
	/*
	 * SMI_CMD = 0: there is no SMM to hand ACPI over from, so the VM is
	 * always in ACPI mode (PM1_CNT.SCI_EN reads 1); ACPI_ENABLE and
	 * ACPI_DISABLE must then be 0 as well.
	 */
	f.smi_cmd = 0;
	f.pm1a_evt_blk = PORT_ACPI_PM1A_EVT;
	f.pm1_evt_len = ACPI_PM1_EVT_LEN;
	f.pm1a_cnt_blk = PORT_ACPI_PM1A_CNT;
	f.pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f.pm_tmr_blk = PORT_ACPI_PM_TMR;
	f.pm_tmr_len = ACPI_PM_TMR_LEN;
	/* No GPE blocks: no device wakes or hot-plugs through a GPE yet. */
	f.x_pm1a_evt_blk = gas_io(PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN, ACPI_GAS_ACCESS_WORD);
	f.x_pm1a_cnt_blk = gas_io(PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN, ACPI_GAS_ACCESS_WORD);
	f.x_pm_tmr_blk = gas_io(PORT_ACPI_PM_TMR, ACPI_PM_TMR_LEN, ACPI_GAS_ACCESS_DWORD);
	/* Only C1 (HLT, which KVM handles); C2 and C3 mean nothing to a vCPU. */
	f.p_lvl2_lat = ACPI_P_LVL2_LAT_NONE;
	f.p_lvl3_lat = ACPI_P_LVL3_LAT_NONE;
	/* The RTC keeps the century at CMOS byte 0x32 (the IBM AT convention). */
	f.century = RTC_CMOS_CENTURY;
	f.iapc_boot_arch = ACPI_IAPC_BOOT_ARCH_LEGACY_DEVICES | ACPI_IAPC_BOOT_ARCH_8042 |
	                   ACPI_IAPC_BOOT_ARCH_VGA_NOT_PRESENT;
	/*
	 * WBINVD:        KVM runs (or emulates) WBINVD with its architectural
	 *                meaning; required for ACPI 2.0+ OSPMs to use the tables.
	 * PROC_C1:       HLT works on every vCPU.
	 * PWR_BUTTON:    left clear: a fixed-feature power button, so the
	 *                monitor can ask for a clean shutdown by setting
	 *                PM1_STS.PWRBTN_STS and raising the SCI.
	 * SLP_BUTTON:    there is no sleep button (and no S1-S4).
	 * FIX_RTC:       the RTC alarm cannot wake the VM (no PM1 RTC_STS).
	 * TMR_VAL_EXT:   left clear: a 24-bit PM timer, which the OS masks to
	 *                24 bits, so it is right for a 24- or 32-bit counter.
	 * RESET_REG_SUP: RESET_REG below works.
	 */
	f.flags = ACPI_FADT_WBINVD | ACPI_FADT_PROC_C1 | ACPI_FADT_SLP_BUTTON | ACPI_FADT_FIX_RTC |
	          ACPI_FADT_RESET_REG_SUP;
	f.reset_reg = gas_io(PORT_RESET, 1, ACPI_GAS_ACCESS_BYTE);
	f.reset_value = ACPI_RESET_VALUE;
	f.fadt_minor_version = ACPI_FADT_MINOR_VERSION;
	w_align(w, ACPI_TABLE_ALIGN);
	start = w->len;
	w_put(w, &f, sizeof(f));
	return table_end(w, start);
}

/*
 * build_madt - §5.2.12. The in-kernel local APICs and I/O APIC. KVM's
 * default GSI routing sends ISA IRQ n to I/O APIC pin n, so the only
 * override is the SCI, which ACPI wants level-triggered; active high is
 * what the monitor drives on the KVM line.
 */
static uint64_t build_madt(struct acpi_writer *w, const struct acpi_config *cfg)
{
	struct acpi_madt madt = {0};
	struct acpi_madt_io_apic ioapic = {
	    .type = ACPI_MADT_TYPE_IO_APIC,
	    .length = sizeof(ioapic),
	    .io_apic_id = (uint8_t)cfg->nr_cpus, /* after the CPUs' ids */
	    .address = (uint32_t)LAYOUT_IOAPIC,
	    .gsi_base = 0,
	};
	struct acpi_madt_interrupt_override sci = {
	    .type = ACPI_MADT_TYPE_INTERRUPT_SOURCE_OVERRIDE,
	    .length = sizeof(sci),
	    .bus = ACPI_MADT_BUS_ISA,
	    .source = IRQ_ACPI_SCI,
	    .gsi = IRQ_ACPI_SCI,
	    .flags = ACPI_MPS_INTI_POLARITY_ACTIVE_HIGH | ACPI_MPS_INTI_TRIGGER_LEVEL,
	};
	struct acpi_madt_local_apic_nmi nmi = {
	    .type = ACPI_MADT_TYPE_LOCAL_APIC_NMI,
	    .length = sizeof(nmi),
	    .processor_uid = ACPI_PROCESSOR_UID_ALL,
	    .flags = ACPI_MPS_INTI_POLARITY_ACTIVE_HIGH | ACPI_MPS_INTI_TRIGGER_EDGE,
	    .lint = ACPI_LINT1,
	};
	size_t start;
	unsigned int i;

	acpi_header_init(&madt.header, "APIC", ACPI_MADT_REVISION);
	madt.local_apic_address = (uint32_t)LAYOUT_LAPIC;
	madt.flags = ACPI_MADT_PCAT_COMPAT;
	w_align(w, ACPI_TABLE_ALIGN);
	start = w->len;
	w_put(w, &madt, sizeof(madt));
	for (i = 0; i < cfg->nr_cpus; i++) {
		struct acpi_madt_local_apic lapic = {
		    .type = ACPI_MADT_TYPE_LOCAL_APIC,
		    .length = sizeof(lapic),
		    .processor_uid = (uint8_t)i,
		    .apic_id = (uint8_t)i,
		    .flags = ACPI_MADT_LAPIC_ENABLED,
		};

		w_put(w, &lapic, sizeof(lapic));
	}
	w_put(w, &ioapic, sizeof(ioapic));
	w_put(w, &sci, sizeof(sci));
	w_put(w, &nmi, sizeof(nmi));
	return table_end(w, start);
}

/* build_mcfg - PCI Firmware 3.2 §4.1.2: one ECAM allocation, segment 0, from bus 0. */
static uint64_t build_mcfg(struct acpi_writer *w, const struct acpi_config *cfg)
{
	struct acpi_mcfg mcfg = {0};
	struct acpi_mcfg_allocation alloc = {
	    .base_address = cfg->ecam_base,
	    .segment = 0,
	    .start_bus = 0,
	    .end_bus = cfg->ecam_end_bus,
	};
	size_t start;

	acpi_header_init(&mcfg.header, "MCFG", ACPI_MCFG_REVISION);
	w_align(w, ACPI_TABLE_ALIGN);
	start = w->len;
	w_put(w, &mcfg, sizeof(mcfg));
	w_put(w, &alloc, sizeof(alloc));
	return table_end(w, start);
}

/*
 * build_sdt - the XSDT (§5.2.8, 64-bit entries) or RSDT (§5.2.7, 32-bit
 * entries) listing @tables.
 */
static uint64_t build_sdt(struct acpi_writer *w, const char *signature, uint8_t revision,
			  size_t entry_size, const uint64_t *tables, size_t nr_tables)
{
	struct acpi_header h = {0};
	size_t start, i;

	acpi_header_init(&h, signature, revision);
	w_align(w, ACPI_TABLE_ALIGN);
	start = w->len;
	w_put(w, &h, sizeof(h));
	for (i = 0; i < nr_tables; i++)
		w_put_le(w, tables[i], entry_size);
	return table_end(w, start);
}

static bool range_below_4g(uint64_t base, uint64_t size)
{
	return base < ACPI_4GIB && size <= ACPI_4GIB - base;
}

static int acpi_check_config(size_t size, uint64_t gpa, const struct acpi_config *cfg)
{
	uint64_t ecam_size;

	if (gpa % ACPI_RSDP_ALIGN || !range_below_4g(gpa, size))
		return -EINVAL;
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return -EINVAL;
	ecam_size = ((uint64_t)cfg->ecam_end_bus + 1) << ECAM_BUS_SHIFT;
	if (cfg->ecam_base % (1ULL << ECAM_BUS_SHIFT) || !range_below_4g(cfg->ecam_base, ecam_size))
		return -EINVAL;
	if (cfg->mmio32_size && !range_below_4g(cfg->mmio32_base, cfg->mmio32_size))
		return -EINVAL;
	if (cfg->mmio64_size && cfg->mmio64_base + (cfg->mmio64_size - 1) < cfg->mmio64_base)
		return -EINVAL;
	return 0;
}

ssize_t acpi_build(void *buf, size_t size, uint64_t gpa, const struct acpi_config *cfg)
{
	struct acpi_writer w = {.buf = buf, .size = size, .gpa = gpa};
	struct acpi_rsdp rsdp = {0};
	uint64_t tables[3], facs, dsdt, xsdt, rsdt;
	int ret;

	if (!buf || !cfg)
		return -EINVAL;
	ret = acpi_check_config(size, gpa, cfg);
	if (ret)
		return ret;

	w_reserve(&w, sizeof(rsdp)); /* filled in last */
	facs = build_facs(&w);
	dsdt = build_dsdt(&w, cfg);
	tables[0] = build_fadt(&w, facs, dsdt);
	tables[1] = build_madt(&w, cfg);
	tables[2] = build_mcfg(&w, cfg);
	xsdt = build_sdt(&w, "XSDT", ACPI_XSDT_REVISION, 8, tables, 3);
	rsdt = build_sdt(&w, "RSDT", ACPI_RSDT_REVISION, 4, tables, 3);
	if (w.err)
		return w.err;

	memcpy(rsdp.signature, ACPI_RSDP_SIGNATURE, sizeof(rsdp.signature));
	memcpy(rsdp.oem_id, ACPI_OEM_ID, sizeof(rsdp.oem_id));
	rsdp.revision = ACPI_RSDP_REVISION;
	rsdp.rsdt_address = (uint32_t)rsdt;
	rsdp.length = sizeof(rsdp);
	rsdp.xsdt_address = xsdt;
	rsdp.checksum = acpi_checksum((const uint8_t *)&rsdp, ACPI_RSDP_V1_LENGTH);
	rsdp.extended_checksum = acpi_checksum((const uint8_t *)&rsdp, sizeof(rsdp));
	memcpy(buf, &rsdp, sizeof(rsdp));
	return (ssize_t)w.len;
}
