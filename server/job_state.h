/* job_state.h: the states of a job, from ONE list (JOB_STATES): the enum,
 * the names stored in SQLite and sent over the API, the SQL CHECK of the
 * runs table, the list filter, the metrics. queued -> running ->
 * succeeded | failed | cancelled (a restart puts running back to queued). */
#ifndef SB_JOB_STATE_H
#define SB_JOB_STATE_H

/* The names, each spelled once: used by the list below and, as SQL
 * literals, by the stores' statements (JOB_SQL). */
#define JOB_NAME_QUEUED "queued"
#define JOB_NAME_RUNNING "running"
#define JOB_NAME_SUCCEEDED "succeeded"
#define JOB_NAME_FAILED "failed"
#define JOB_NAME_CANCELLED "cancelled"

/* X(enum suffix, name, finished) */
#define JOB_STATES(X)                        \
  X(QUEUED, JOB_NAME_QUEUED, 0)              \
  X(RUNNING, JOB_NAME_RUNNING, 0)            \
  X(SUCCEEDED, JOB_NAME_SUCCEEDED, 1)        \
  X(FAILED, JOB_NAME_FAILED, 1)              \
  X(CANCELLED, JOB_NAME_CANCELLED, 1)

/* A state as an SQL string literal in a statement built at compile time:
 * "UPDATE runs SET state = " JOB_SQL(RUNNING) " WHERE ..." (a misspelt state
 * does not compile). */
#define JOB_SQL(e) "'" JOB_NAME_##e "'"
/* The finished states as an SQL list; tests/unit/test_server_store.c checks
 * it against the finished flags of JOB_STATES. */
#define JOB_SQL_FINISHED "(" JOB_SQL(SUCCEEDED) "," JOB_SQL(FAILED) "," JOB_SQL(CANCELLED) ")"

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
