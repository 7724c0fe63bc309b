build-asan/obj/core/tool/cmd_simulate.o: core/tool/cmd_simulate.c \
 core/tool/cmd.h
core/tool/cmd.h:
