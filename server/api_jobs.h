/* api_jobs.h: what the job-shaped endpoints share (api_assimilations.c):
 * /v1/forecasts and the cycles of /v1/streams answer with the job resource
 * of /v1/assimilations/{id}, long-poll it the same way, and map store errors
 * to problems the same way. */
#ifndef SB_API_JOBS_H
#define SB_API_JOBS_H

#include "app.h"
#include "http_server.h"
#include "job_spec.h"

#define API_MAX_WAIT 60.0

/* 404/409/422 for the store's answers about runs, 503 for its failures. */
enum MHD_Result api_store_problem(http_req *q, int rc, const sb_error *err);
/* The job id: 200 when finished, else pending_status; Location its URL. */
enum MHD_Result api_reply_job(http_req *q, const char *id, int pending_status);
/* 1 when job id is finished (or gone): the is_done of http_wait_suspend. */
int api_job_done(http_req *q, const char *id);
/* ?wait=SECONDS (capped at API_MAX_WAIT) into *wait, 0 when absent; -1
 * when invalid, after replying with the problem+json in *reply. */
int api_wait_param(http_req *q, double *wait, enum MHD_Result *reply);
/* A parsed request's from_job background against the store, then the
 * limits again with its size known. 0, or nonzero with *problem. */
int api_check_background(app *a, job_spec *spec, const job_limits *lim, json_t **problem);

#endif
