#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "legacy.h"

#define CONF "/etc/legacy-app.conf"
#define LOG "/var/log/legacy-app.log"

int legacy_start(char *report, int n) {
	char line[256], mode[64] = "?", owner[64] = "?";
	struct utsname u;
	int used = 0;

	if (getuid() != 0) {
		snprintf(report, n, "legacy: must run as root, not uid %d\n", (int)getuid());
		return 1;
	}
	used += snprintf(report + used, n - used, "uid: %d (root, as required)\n", (int)getuid());

	FILE *f = fopen(CONF, "r");
	if (!f) {
		snprintf(report + used, n - used, "legacy: cannot read %s: %s\n", CONF, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof line, f)) {
		sscanf(line, "mode=%63s", mode);
		sscanf(line, "owner=%63s", owner);
	}
	fclose(f);
	used += snprintf(report + used, n - used, "config %s: mode=%s owner=%s\n", CONF, mode, owner);

	if (uname(&u) != 0) {
		snprintf(report + used, n - used, "legacy: uname: %s\n", strerror(errno));
		return 1;
	}
	used += snprintf(report + used, n - used, "host: %s %s %s\n", u.sysname, u.nodename, u.release);

	FILE *log = fopen(LOG, "a");
	if (!log) {
		snprintf(report + used, n - used, "legacy: cannot open %s: %s\n", LOG, strerror(errno));
		return 1;
	}
	fprintf(log, "legacy-app started on %s in mode %s\n", u.nodename, mode);
	fclose(log);
	used += snprintf(report + used, n - used, "logged to %s\n", LOG);
	return 0;
}
