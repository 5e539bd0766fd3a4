/*
 * prlimit-shim: lets CRIU read the resource limits of another user's process where root lacks
 * CAP_SYS_RESOURCE (a container or sandbox that dropped it; no ordinary host's root lacks it).
 *
 * CRIU 4.2 dumps a task's limits with prlimit64(pid, resource, NULL, &old). The kernel allows that for
 * a task of another user only with CAP_SYS_RESOURCE (kernel/sys.c, check_prlimit_permission), so a
 * pod whose processes run as, say, postgres cannot be dumped. The same values are in
 * /proc/PID/limits, which root may read. Loaded into CRIU only (the criu role's wrapper passes it to
 * the dynamic loader with --preload), this wraps syscall() and, when the kernel refuses exactly that
 * read with EPERM, answers it from /proc/PID/limits. Every other call is passed through unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* The rows of /proc/PID/limits, in the order of the RLIMIT_* numbers (fs/proc/base.c, lnames). */
static const char *const rows[] = {
	"Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
	"Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
	"Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
	"Max realtime priority", "Max realtime timeout",
};
#define COLUMN 26 /* where the soft limit starts: the row name is padded to 26 characters */

static unsigned long long limit_value(const char *text)
{
	return strcmp(text, "unlimited") == 0 ? RLIM64_INFINITY : strtoull(text, NULL, 10);
}

static int limits_from_proc(long pid, long resource, struct rlimit64 *old)
{
	char path[64], line[256], soft[32], hard[32];
	int found = -1;
	FILE *limits;

	if (resource < 0 || resource >= (long)(sizeof(rows) / sizeof(rows[0])))
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/limits", pid);
	limits = fopen(path, "re");
	if (!limits)
		return -1;
	while (fgets(line, sizeof(line), limits)) {
		size_t length = strlen(rows[resource]);

		if (strncmp(line, rows[resource], length) || line[length] != ' ' || strlen(line) <= COLUMN)
			continue;
		if (sscanf(line + COLUMN, "%31s %31s", soft, hard) == 2) {
			old->rlim_cur = limit_value(soft);
			old->rlim_max = limit_value(hard);
			found = 0;
		}
		break;
	}
	fclose(limits);
	return found;
}

long syscall(long number, ...)
{
	static long (*next)(long, ...);
	long arg[6], result;
	va_list list;
	int i;

	va_start(list, number);
	for (i = 0; i < 6; i++)
		arg[i] = va_arg(list, long);
	va_end(list);
	if (!next)
		next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	result = next(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
	if (result == -1 && errno == EPERM && number == SYS_prlimit64 && arg[2] == 0 && arg[3] != 0 &&
	    limits_from_proc(arg[0], arg[1], (struct rlimit64 *)arg[3]) == 0) {
		errno = 0;
		return 0;
	}
	return result;
}
