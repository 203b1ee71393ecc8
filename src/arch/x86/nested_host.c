/* SPDX-License-Identifier: MIT */
#include "arch/x86/nested_host.h"

#include "arch/x86/cpuid.h"
#include "kvm/kvm.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Vendor KVM modules and the name to show for them. */
static const char *const nested_kvm_modules[] = {"kvm_intel", "kvm_amd", "kvm_pvm"};

static int read_text(const char *root, const char *path, char *buf, size_t len)
{
	char full[512];
	FILE *fp;
	size_t n;

	snprintf(full, sizeof(full), "%s%s", root, path);
	fp = fopen(full, "re");
	if (!fp)
		return -errno;
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return (int)n;
}

static bool path_exists(const char *root, const char *path)
{
	char full[512];

	snprintf(full, sizeof(full), "%s%s", root, path);
	return access(full, F_OK) == 0;
}

/* A whole word in a space-separated list. */
static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += len) {
		if ((p == list || p[-1] == ' ' || p[-1] == '\t') &&
		    (p[len] == ' ' || p[len] == '\n' || p[len] == '\0'))
			return true;
	}
	return false;
}

/* The value of "key\t: value" in /proc/cpuinfo's first processor. */
static void cpuinfo_field(const char *info, const char *key, char *out, size_t len)
{
	const char *p = strstr(info, key), *colon, *end;

	out[0] = '\0';
	if (!p || !(colon = strchr(p, ':')))
		return;
	colon += 2;
	end = strchr(colon, '\n');
	if (!end)
		end = colon + strlen(colon);
	snprintf(out, len, "%.*s", (int)(end - colon), colon);
}

static void gather_cpu(struct nested_host_facts *f, const char *root)
{
	static char info[65536];
	char flags[8192], vmx_flags[2048];
	unsigned int a, b, c, d;

	if (read_text(root, "/proc/cpuinfo", info, sizeof(info)) > 0) {
		cpuinfo_field(info, "vendor_id", f->cpu_vendor, sizeof(f->cpu_vendor));
		cpuinfo_field(info, "model name", f->cpu_model, sizeof(f->cpu_model));
		cpuinfo_field(info, "\nflags", flags, sizeof(flags));
		cpuinfo_field(info, "vmx flags", vmx_flags, sizeof(vmx_flags));
		f->cpu_vmx = has_word(flags, "vmx");
		f->cpu_svm = has_word(flags, "svm");
		f->cpu_ept = has_word(flags, "ept") || has_word(vmx_flags, "ept");
		f->cpu_npt = has_word(flags, "npt");
	}
	/* The hypervisor bit and signature as this host's own CPUID reports them. */
	if (__get_cpuid(1, &a, &b, &c, &d))
		f->is_vm = c & CPUID_1_ECX_HYPERVISOR;
	if (f->is_vm) {
		char sig[13] = {0};

		__cpuid(CPUID_LEAF_KVM_SIGNATURE, a, b, c, d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		for (int i = 0; i < 12; i++)
			if (sig[i] && (sig[i] < 0x20 || sig[i] > 0x7e))
				sig[i] = '?';
		snprintf(f->hypervisor, sizeof(f->hypervisor), "%s", sig);
	}
}

static void gather_kvm(struct nested_host_facts *f, const char *root, const char *kvm_path)
{
	char path[256], val[16];
	struct kvm_sys sys;
	struct kvm_cpuid2 *c;

	f->kvm_nested_param = -1;
	for (unsigned int i = 0; i < sizeof(nested_kvm_modules) / sizeof(nested_kvm_modules[0]);
	     i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", nested_kvm_modules[i]);
		if (!path_exists(root, path))
			continue;
		snprintf(f->kvm_module, sizeof(f->kvm_module), "%s", nested_kvm_modules[i]);
		snprintf(path, sizeof(path), "/sys/module/%s/parameters/nested",
		         nested_kvm_modules[i]);
		if (read_text(root, path, val, sizeof(val)) > 0)
			f->kvm_nested_param = val[0] == 'Y' || val[0] == 'y' || val[0] == '1';
		break;
	}
	snprintf(path, sizeof(path), "%s%s", root, kvm_path);
	f->kvm_present = access(path, F_OK) == 0;
	f->kvm_writable = access(path, R_OK | W_OK) == 0;
	if (!f->kvm_writable || kvm_sys_open(&sys, path) < 0)
		return;
	if (kvm_get_supported_cpuid(&sys, &c) == 0) {
		struct kvm_cpuid_entry2 *e1 = cpuid_find(c, 1, 0),
		                        *e8 = cpuid_find(c, 0x80000001, 0);

		f->kvm_offers_vmx = e1 && (e1->ecx & CPUID_1_ECX_VMX);
		f->kvm_offers_svm = e8 && (e8->ecx & CPUID_80000001_ECX_SVM);
		free(c);
	}
	f->nested_state_size = kvm_check_cap(sys.fd, KVM_CAP_NESTED_STATE);
	f->kvm_queried = true;
	kvm_sys_close(&sys);
}

/* The mode in brackets: "always [madvise] never" -> "madvise". */
static void gather_thp(struct nested_host_facts *f, const char *root)
{
	char val[64], *open, *close;

	if (read_text(root, "/sys/kernel/mm/transparent_hugepage/enabled", val, sizeof(val)) <= 0)
		return;
	open = strchr(val, '[');
	close = open ? strchr(open, ']') : NULL;
	if (close && close - open - 1 < (int)sizeof(f->thp))
		snprintf(f->thp, sizeof(f->thp), "%.*s", (int)(close - open - 1), open + 1);
}

void nested_host_gather(struct nested_host_facts *f, const char *root, const char *kvm_path)
{
	char meminfo[4096], *p;

	memset(f, 0, sizeof(*f));
	gather_cpu(f, root);
	gather_kvm(f, root, kvm_path);
	gather_thp(f, root);
	if (read_text(root, "/proc/meminfo", meminfo, sizeof(meminfo)) > 0 &&
	    (p = strstr(meminfo, "MemAvailable:")))
		f->mem_available = strtoull(p + 13, NULL, 10) << 10;
}

static struct nested_check *add_check(struct nested_host_report *r, const char *name,
                                      enum nested_check_result res, const char *hint,
                                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static struct nested_check *add_check(struct nested_host_report *r, const char *name,
                                      enum nested_check_result res, const char *hint,
                                      const char *fmt, ...)
{
	struct nested_check *c = &r->checks[r->nr_checks];
	va_list ap;

	if (r->nr_checks >= NESTED_HOST_MAX_CHECKS)
		return NULL;
	r->nr_checks++;
	c->name = name;
	c->result = res;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->hint, sizeof(c->hint), "%s",
	         (res == NESTED_CHECK_FAIL || res == NESTED_CHECK_WARN) && hint ? hint : "");
	if (res == NESTED_CHECK_FAIL)
		r->can_nest = false;
	return c;
}

static const char *pass_fail(bool ok)
{
	return ok ? "yes" : "no";
}

void nested_host_evaluate(const struct nested_host_facts *f, struct nested_host_report *r)
{
	bool amd =
	    f->cpu_svm || !strcmp(f->kvm_module, "kvm_amd") || strstr(f->cpu_vendor, "AMD") != NULL;
	bool pvm = !strcmp(f->kvm_module, "kvm_pvm");
	const char *ext = amd ? "AMD-V (svm)" : "VT-x (vmx)";
	const char *vendor_module = amd ? "kvm_amd" : "kvm_intel";
	char hint[320];

	memset(r, 0, sizeof(*r));
	r->can_nest = true;

	add_check(r, "cpu", (f->cpu_vmx || f->cpu_svm) ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL,
	          f->is_vm
	              ? "this host is a VM: turn on nested virtualization in the hypervisor "
	                "that runs it (Hyper-V: Set-VMProcessor -ExposeVirtualizationExtensions "
	                "$true; KVM: nested=1 on its host)"
	              : "enable VT-x/AMD-V (SVM) in the firmware setup",
	          "%s %s: %s %s", f->cpu_vendor[0] ? f->cpu_vendor : "unknown CPU", f->cpu_model,
	          ext, pass_fail(f->cpu_vmx || f->cpu_svm));
	add_check(r, "slat", (f->cpu_ept || f->cpu_npt) ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL,
	          "second-level address translation (EPT/NPT) is needed for nested guests to run "
	          "at a usable speed; use a CPU or an outer hypervisor that provides it",
	          "%s: %s", amd ? "NPT" : "EPT", pass_fail(f->cpu_ept || f->cpu_npt));
	add_check(r, "kvm-device", f->kvm_writable ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL,
	          f->kvm_present ? "run as root or add the user to the kvm group"
	                         : "load the KVM module: modprobe kvm_amd or modprobe kvm_intel",
	          "/dev/kvm: %s",
	          f->kvm_writable  ? "present and writable"
	          : f->kvm_present ? "present but not writable by this user"
	                           : "missing");
	if (pvm) {
		add_check(r, "kvm-module", NESTED_CHECK_FAIL,
		          "nesting needs KVM on VT-x or AMD-V; kvm_pvm cannot provide it. Run "
		          "nestvm on bare metal or in a VM whose hypervisor exposes VT-x/AMD-V",
		          "kvm_pvm (Pagetable-based Virtual Machine): KVM without hardware "
		          "virtualization, cannot run nested hypervisors");
	} else if (!f->kvm_module[0]) {
		snprintf(hint, sizeof(hint), "modprobe %s nested=1", vendor_module);
		add_check(r, "kvm-module", NESTED_CHECK_FAIL, hint, "no vendor KVM module loaded");
	} else {
		snprintf(
		    hint, sizeof(hint),
		    "echo 'options %s nested=1' > /etc/modprobe.d/nestvm.conf; modprobe -r %s; "
		    "modprobe %s",
		    f->kvm_module, f->kvm_module, f->kvm_module);
		add_check(r, "kvm-module",
		          f->kvm_nested_param == 1 ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL, hint,
		          "%s loaded, nested=%s", f->kvm_module,
		          f->kvm_nested_param == 1   ? "1"
		          : f->kvm_nested_param == 0 ? "0"
		                                     : "unknown");
	}
	if (f->kvm_queried) {
		bool offers = f->kvm_offers_vmx || f->kvm_offers_svm;

		add_check(r, "kvm-cpuid", offers ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL,
		          "KVM does not offer VMX/SVM to guests: see the kvm-module check",
		          "KVM_GET_SUPPORTED_CPUID offers %s",
		          f->kvm_offers_svm   ? "SVM"
		          : f->kvm_offers_vmx ? "VMX"
		                              : "neither VMX nor SVM");
		add_check(r, "nested-state",
		          f->nested_state_size > 0 ? NESTED_CHECK_PASS : NESTED_CHECK_FAIL,
		          "KVM_CAP_NESTED_STATE is missing: checkpoints and migration of a VM "
		          "running its own VMs need Linux >= 4.19 with nesting enabled",
		          "KVM_CAP_NESTED_STATE = %d", f->nested_state_size);
	}
	add_check(r, "memory",
	          f->mem_available >= NESTED_HOST_MIN_MEMORY ? NESTED_CHECK_PASS
	                                                     : NESTED_CHECK_FAIL,
	          "free memory: a VM that runs its own VMs needs room for them too",
	          "%llu MiB available (at least %llu MiB advised)",
	          (unsigned long long)(f->mem_available >> 20),
	          (unsigned long long)(NESTED_HOST_MIN_MEMORY >> 20));
	/*
	 * nestvm asks for huge pages (MADV_HUGEPAGE) for guest RAM; with THP off
	 * each 4 KiB of a guest's RAM costs an exit at its first touch, and an
	 * L2's exits are the slow path of nesting (a Linux L2's boot measured
	 * 30,000 of them of 56,000). Linux turns THP off on hosts with less than
	 * 512 MiB of RAM, i.e. in small L1s.
	 */
	if (f->thp[0])
		add_check(r, "huge-pages",
		          strcmp(f->thp, "never") ? NESTED_CHECK_PASS : NESTED_CHECK_WARN,
		          "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled; echo madvise > "
		          "/sys/kernel/mm/transparent_hugepage/defrag",
		          "transparent huge pages: %s%s", f->thp,
		          strcmp(f->thp, "never") ? ""
		                                  : " (guest RAM in 4 KiB pages: an exit at each "
		                                    "first touch, slow for nested guests)");
	add_check(r, "host-is-vm", NESTED_CHECK_INFO, NULL, "%s%s%s%s",
	          f->is_vm ? "yes, a VM" : "no, bare metal", f->is_vm ? " (hypervisor: " : "",
	          f->is_vm ? (f->hypervisor[0] ? f->hypervisor : "unknown") : "",
	          f->is_vm ? (pvm ? "; its KVM is PVM-backed)" : ")") : "");
}
