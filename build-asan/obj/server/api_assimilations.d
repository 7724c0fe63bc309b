build-asan/obj/server/api_assimilations.o: server/api_assimilations.c \
 server/clock.h server/http_routes.h server/http_server.h server/app.h \
 server/config.h core/util/sb_error.h server/job_queue.h \
 server/registry.h core/est/est.h core/obs/obs.h core/sim/sim.h \
 server/store.h server/dynbuf.h server/http_wait.h server/job_spec.h \
 server/log.h server/metrics.h core/util/npy.h core/util/sb_error.h \
 server/problem.h
server/clock.h:
server/http_routes.h:
server/http_server.h:
server/app.h:
server/config.h:
core/util/sb_error.h:
server/job_queue.h:
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/sim/sim.h:
server/store.h:
server/dynbuf.h:
server/http_wait.h:
server/job_spec.h:
server/log.h:
server/metrics.h:
core/util/npy.h:
core/util/sb_error.h:
server/problem.h:
