build-asan/obj/server/problem.o: server/problem.c server/problem.h
server/problem.h:
