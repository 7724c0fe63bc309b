/* fuzz.h: what every fuzz harness in tests/fuzz/ shares.
 *
 * A harness defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize). The same source is linked two ways:
 *   - with clang -fsanitize=fuzzer,address,undefined into build-fuzz/fuzz_<target>
 *     (`make fuzz`), where libFuzzer generates the inputs;
 *   - with the normal compiler and replay_main.c into $(BUILD)/tests/test_fuzz_<target>
 *     (`make test`), which feeds the seed corpus and every regression input.
 * A harness checks invariants of the code under test and calls fuzz_fail (abort)
 * when one breaks, so a finding is a crash in both builds. */
#ifndef SB_FUZZ_H
#define SB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Absolute path of a file of the source tree (FUZZ_SRCDIR is set by the Makefile). */
const char *fuzz_src_path(const char *rel, char *buf, size_t size);
/* A file that lives in memory (memfd), reachable by the path it returns
 * (/proc/self/fd/N); fuzz_file_set replaces its content. One per process. */
const char *fuzz_file_set(const uint8_t *data, size_t size);
/* Path of name in a private scratch directory (on /dev/shm when it exists,
 * so fsync is cheap), removed with its files at exit. */
const char *fuzz_tmp_path(const char *name, char *buf, size_t size);
/* 1 when SBIDA_FUZZ_KNOWN_DEFECTS is set: the harness then lets pass the
 * symptoms of defects already filed in issue 18 (named where they are
 * checked), so a fuzz run before their fixes explores past them. Unset by
 * default and in make test: the invariant is the contract. */
int fuzz_known_defects(void);
/* Prints what broke and aborts (a finding). */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FUZZ_CHECK(cond, ...) do { if (!(cond)) fuzz_fail(__VA_ARGS__); } while (0)

#endif
