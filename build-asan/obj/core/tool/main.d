build-asan/obj/core/tool/main.o: core/tool/main.c core/tool/cmd.h
core/tool/cmd.h:
