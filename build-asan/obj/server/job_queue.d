build-asan/obj/server/job_queue.o: server/job_queue.c server/job_queue.h \
 server/registry.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h server/store.h server/clock.h server/job_run.h \
 server/log.h server/metrics.h server/dynbuf.h
server/job_queue.h:
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
server/store.h:
server/clock.h:
server/job_run.h:
server/log.h:
server/metrics.h:
server/dynbuf.h:
