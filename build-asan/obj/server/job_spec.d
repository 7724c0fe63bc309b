build-asan/obj/server/job_spec.o: server/job_spec.c server/job_spec.h \
 core/est/est.h core/obs/obs.h core/util/sb_error.h core/sim/sim.h \
 server/registry.h server/problem.h
server/job_spec.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
server/registry.h:
server/problem.h:
