// The hash chain: chain() = SHA-256(previous hash || seq:u64be || job:u64be || body).
//
// OpenSSL 3's EVP interface is used; the low-level SHA256_* functions are
// deprecated there. chain() runs once per appended record and once per
// verified record, so the digest and a context are set up once per thread
// rather than per call.
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

#include "store/event_log.hpp"
#include "store/record_format.hpp"

namespace jobsmith::store {

namespace {

// Fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up in
// its provider on every EVP_DigestInit_ex. Never freed, so that it outlives
// every thread's context.
const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

struct digest_context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  digest_context() = default;
  digest_context(const digest_context&) = delete;
  digest_context& operator=(const digest_context&) = delete;
  ~digest_context() { EVP_MD_CTX_free(ctx); }
};

[[noreturn]] void hashing_failed() {
  // Only a broken OpenSSL installation or exhausted memory gets here; a
  // record without a valid hash must never be written, so stop.
  std::fputs("jobsmith: SHA-256 via OpenSSL EVP failed\n", stderr);
  std::abort();
}

}  // namespace

chain_hash chain(const chain_hash& previous, sequence_t seq, job_id job, std::string_view body) {
  thread_local digest_context dc;
  const EVP_MD* md = sha256();
  if (dc.ctx == nullptr || md == nullptr) hashing_failed();

  unsigned char prefix[32 + 8 + 8];
  std::memcpy(prefix, previous.data(), previous.size());
  format::put_be64(reinterpret_cast<char*>(prefix) + 32, seq);
  format::put_be64(reinterpret_cast<char*>(prefix) + 40, job);

  chain_hash out;
  unsigned int len = 0;
  if (EVP_DigestInit_ex(dc.ctx, md, nullptr) != 1 ||
      EVP_DigestUpdate(dc.ctx, prefix, sizeof prefix) != 1 ||
      EVP_DigestUpdate(dc.ctx, body.data(), body.size()) != 1 ||
      EVP_DigestFinal_ex(dc.ctx, out.data(), &len) != 1 || len != out.size()) {
    hashing_failed();
  }
  return out;
}

std::string to_hex(const chain_hash& h) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(h.size() * 2, '\0');
  for (std::size_t i = 0; i < h.size(); ++i) {
    out[2 * i] = digits[h[i] >> 4];
    out[2 * i + 1] = digits[h[i] & 0x0f];
  }
  return out;
}

}  // namespace jobsmith::store
