build-asan/obj/server/openapi_embed.o: server/openapi_embed.c
