/* job_state.h: the states of a job, from ONE list (JOB_STATES): the enum,
 * the names stored in SQLite and sent over the API, the SQL CHECK of the
 * runs table, the list filter, the metrics. queued -> running ->
 * succeeded | failed | cancelled (a restart puts running back to queued). */
#ifndef SB_JOB_STATE_H
#define SB_JOB_STATE_H

/* X(enum suffix, name, finished) */
#define JOB_STATES(X)                 \
  X(QUEUED, "queued", 0)              \
  X(RUNNING, "running", 0)            \
  X(SUCCEEDED, "succeeded", 1)        \
  X(FAILED, "failed", 1)              \
  X(CANCELLED, "cancelled", 1)

#define JOB_STATE_ENUM(e, name, fin) JOB_##e,
typedef enum { JOB_STATES(JOB_STATE_ENUM) JOB_N_STATES } job_state;
#undef JOB_STATE_ENUM

/* "queued" ... for a state; NULL outside the list */
const char *job_state_name(job_state s);
/* the state called name, or -1 */
int job_state_parse(const char *name);
/* 1 when name is the name of state s */
int job_state_is(const char *name, job_state s);
/* 1 for succeeded, failed and cancelled */
int job_state_finished(const char *name);
/* "queued, running, succeeded, failed, cancelled" (sep ", ") or the SQL list
 * "'queued','running',..." (sep ",", quote "'") into buf */
const char *job_state_list(char *buf, unsigned size, const char *sep, const char *quote);

#endif
