/* clock.h: wall-clock milliseconds and RFC 3339 formatting for the daemon. */
#ifndef SB_CLOCK_H
#define SB_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_now_ms(void);
/* Monotonic seconds, for durations. */
double clock_mono_s(void);
/* Writes "2026-11-27T19:49:27.123Z" into buf (at least 32 bytes). */
void clock_format_rfc3339(int64_t ms, char *buf, int size);

#endif
