/* openapi_embed.c: schema/openapi.json compiled into the daemon (make is the
 * only build step; the Makefile rebuilds this object when the file changes).
 * The path is relative to the repository root, where make runs the compiler. */
__asm__(".section .rodata\n"
        ".global sbida_openapi_json\n"
        ".type sbida_openapi_json, @object\n"
        "sbida_openapi_json:\n"
        ".incbin \"schema/openapi.json\"\n"
        "sbida_openapi_json_end:\n"
        ".byte 0\n"
        ".global sbida_openapi_json_len\n"
        ".type sbida_openapi_json_len, @object\n"
        ".balign 8\n"
        "sbida_openapi_json_len:\n"
        ".quad sbida_openapi_json_end - sbida_openapi_json\n"
        ".text\n");
