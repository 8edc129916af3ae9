#include "pv/workers/providers/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <vector>

#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {
namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

}  // namespace

PrivateKey LoadPrivateKeyPem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) throw KeyError("cannot allocate BIO");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) throw KeyError("not a PEM private key: " + OpenSslError());
  return PrivateKey(key);
}

std::string SignJwt(JwtAlgorithm algorithm, std::string_view header_json, std::string_view claims_json,
                    EVP_PKEY* key) {
  int expected = algorithm == JwtAlgorithm::kRs256 ? EVP_PKEY_RSA : EVP_PKEY_EC;
  if (EVP_PKEY_base_id(key) != expected) {
    throw KeyError(algorithm == JwtAlgorithm::kRs256 ? "RS256 needs an RSA key"
                                                     : "ES256 needs an EC P-256 key");
  }
  std::string input = Base64Url(header_json) + "." + Base64Url(claims_json);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) throw KeyError("cannot allocate digest context");
  size_t len = 0;
  std::vector<unsigned char> sig;
  bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, sig.data(), &len, reinterpret_cast<const unsigned char*>(input.data()),
                        input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw KeyError("signing failed: " + OpenSslError());

  std::string signature;
  if (algorithm == JwtAlgorithm::kEs256) {
    // OpenSSL gives DER (SEQUENCE of two INTEGERs); JWS wants r and s as 32 big-endian bytes each.
    const unsigned char* p = sig.data();
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (es == nullptr) throw KeyError("cannot decode ECDSA signature");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(es, &r, &s);
    unsigned char raw[64];
    bool sized = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(es);
    if (!sized) throw KeyError("ES256 needs a P-256 key");
    signature.assign(reinterpret_cast<const char*>(raw), sizeof(raw));
  } else {
    signature.assign(reinterpret_cast<const char*>(sig.data()), sig.size());
  }
  return input + "." + Base64Url(signature);
}

}  // namespace pv::workers::providers
