/* job_state.c: names and tests of job states (see job_state.h). */
#include "job_state.h"

#include <stdio.h>
#include <string.h>

#define JOB_STATE_NAME(e, name, fin) name,
static const char *const names[JOB_N_STATES] = {JOB_STATES(JOB_STATE_NAME)};
#define JOB_STATE_FIN(e, name, fin) fin,
static const int finished[JOB_N_STATES] = {JOB_STATES(JOB_STATE_FIN)};

const char *job_state_name(job_state s) { return s >= 0 && s < JOB_N_STATES ? names[s] : NULL; }

int job_state_parse(const char *name) {
  for (int i = 0; name && i < JOB_N_STATES; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

int job_state_is(const char *name, job_state s) { return name && job_state_parse(name) == (int)s; }

int job_state_finished(const char *name) {
  int s = job_state_parse(name);
  return s >= 0 && finished[s];
}

const char *job_state_list(char *buf, unsigned size, const char *sep, const char *quote) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < JOB_N_STATES && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s%s%s", i ? sep : "", quote, names[i], quote);
  return buf;
}
