api_streams.o: server/api_streams.c server/api_jobs.h server/app.h \
 server/config.h core/util/sb_error.h server/job_queue.h \
 server/registry.h core/est/est.h core/obs/obs.h core/sim/sim.h \
 core/util/par.h core/util/params.h server/store.h server/job_state.h \
 server/http_server.h server/dynbuf.h server/job_spec.h server/clock.h \
 server/http_routes.h server/http_wait.h server/job_background.h \
 server/job_forecast.h server/job_run.h server/log.h server/metrics.h \
 server/page_token.h server/problem.h
server/api_jobs.h:
server/app.h:
server/config.h:
core/util/sb_error.h:
server/job_queue.h:
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/sim/sim.h:
core/util/par.h:
core/util/params.h:
server/store.h:
server/job_state.h:
server/http_server.h:
server/dynbuf.h:
server/job_spec.h:
server/clock.h:
server/http_routes.h:
server/http_wait.h:
server/job_background.h:
server/job_forecast.h:
server/job_run.h:
server/log.h:
server/metrics.h:
server/page_token.h:
server/problem.h:
