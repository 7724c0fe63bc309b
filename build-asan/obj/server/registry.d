build-asan/obj/server/registry.o: server/registry.c server/registry.h \
 core/est/est.h core/obs/obs.h core/util/sb_error.h core/sim/sim.h \
 server/log.h
server/registry.h:
core/est/est.h:
core/obs/obs.h:
core/util/sb_error.h:
core/sim/sim.h:
server/log.h:
