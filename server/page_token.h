/* page_token.h: list page tokens, opaque and tamper-evident. A token is
 * base64url (no padding) of 16 bytes: the position (the last seq of the
 * page) masked with a pad, then a SipHash-2-4 tag of the position, both
 * keyed with the database's secret (store_secret), so a client can neither
 * read a position from a token nor forge or alter one, and tokens of one
 * database are refused by another. */
#ifndef SB_PAGE_TOKEN_H
#define SB_PAGE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_TOKEN_LEN 22 /* characters, without the NUL */

/* SipHash-2-4 of in[0..len) under a 16-byte key. */
uint64_t page_siphash(const unsigned char key[16], const void *in, size_t len);
/* Writes the token of position seq (> 0) into out[PAGE_TOKEN_LEN + 1]. */
void page_token_encode(const unsigned char key[16], long long seq, char *out);
/* The position of a token made with key, or -1 (malformed, altered, other key). */
long long page_token_decode(const unsigned char key[16], const char *token);

#endif
