#include "page_token.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                               \
  do {                                                                                         \
    v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                  \
    v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                     \
    v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                     \
    v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                  \
  } while (0)

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

uint64_t page_siphash(const unsigned char key[16], const void *in, size_t len) {
  const unsigned char *m = in;
  uint64_t k0 = le64(key), k1 = le64(key + 8);
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  size_t full = len / 8 * 8;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t x = le64(m + i);
    v3 ^= x;
    SIPROUND;
    SIPROUND;
    v0 ^= x;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < len - full; i++) b |= (uint64_t)m[full + i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t page_pad(const unsigned char key[16]) { return page_siphash(key, "sbida page pad", 14); }

static uint64_t page_tag(const unsigned char key[16], uint64_t seq) {
  unsigned char m[16];
  put64(m, seq);
  memcpy(m + 8, "pagetag1", 8);
  return page_siphash(key, m, sizeof m);
}

void page_token_encode(const unsigned char key[16], long long seq, char *out) {
  unsigned char raw[18] = {0}; /* 16 bytes and 2 of zero padding: 6 groups of 3 */
  put64(raw, (uint64_t)seq ^ page_pad(key));
  put64(raw + 8, page_tag(key, (uint64_t)seq));
  int o = 0;
  for (int i = 0; i < 18; i += 3) {
    uint32_t g = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
    for (int k = 3; k >= 0; k--)
      if (o < PAGE_TOKEN_LEN) out[o++] = b64[(g >> (6 * k)) & 63];
  }
  out[PAGE_TOKEN_LEN] = 0;
}

long long page_token_decode(const unsigned char key[16], const char *token) {
  if (!token || strlen(token) != PAGE_TOKEN_LEN) return -1;
  unsigned char raw[18] = {0};
  uint32_t acc = 0;
  int bits = 0, o = 0;
  for (int i = 0; i < PAGE_TOKEN_LEN; i++) {
    const char *p = strchr(b64, token[i]);
    if (!p || !token[i]) return -1;
    acc = (acc << 6) | (uint32_t)(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      raw[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc) return -1; /* the unused low bits must be zero: one spelling per token */
  uint64_t seq = le64(raw) ^ page_pad(key);
  uint64_t tag = le64(raw + 8);
  if (tag != page_tag(key, seq) || seq == 0 || seq > (1ULL << 62)) return -1;
  return (long long)seq;
}
