/* A legacy C library, written the way old code is: absolute paths, a root
 * check, the host's identity from uname. It is not to be changed. */
#ifndef LEGACY_H
#define LEGACY_H

/* legacy_start reads /etc/legacy-app.conf, checks that it runs as root,
 * logs to /var/log/legacy-app.log and reports what it saw into report.
 * Returns 0 when it could start. */
int legacy_start(char *report, int n);

#endif
