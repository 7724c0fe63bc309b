build-asan/obj/server/http_routes.o: server/http_routes.c \
 server/http_routes.h server/http_server.h server/app.h server/config.h \
 core/util/sb_error.h server/job_queue.h server/registry.h core/est/est.h \
 core/obs/obs.h core/sim/sim.h server/store.h server/dynbuf.h
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
