build-asan/obj/server/main.o: server/main.c server/app.h server/config.h \
 core/util/sb_error.h server/job_queue.h server/registry.h core/est/est.h \
 core/obs/obs.h core/sim/sim.h server/store.h server/clock.h \
 server/http_routes.h server/http_server.h server/dynbuf.h \
 server/http_wait.h server/log.h server/metrics.h server/version.h
server/app.h:
server/config.h:
core/util/sb_error.h:
server/job_queue.h:
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/sim/sim.h:
server/store.h:
server/clock.h:
server/http_routes.h:
server/http_server.h:
server/dynbuf.h:
server/http_wait.h:
server/log.h:
server/metrics.h:
server/version.h:
