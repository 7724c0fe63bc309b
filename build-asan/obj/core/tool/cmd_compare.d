build-asan/obj/core/tool/cmd_compare.o: core/tool/cmd_compare.c \
 core/tool/cmd.h
core/tool/cmd.h:
