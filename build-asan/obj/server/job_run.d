build-asan/obj/server/job_run.o: server/job_run.c server/job_run.h \
 server/registry.h core/est/est.h core/obs/obs.h core/util/sb_error.h \
 core/sim/sim.h server/clock.h server/job_spec.h server/problem.h
server/job_run.h:
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
server/clock.h:
server/job_spec.h:
server/problem.h:
