// JSON Web Tokens signed with the service's private key: RS256 for Google's OAuth2 service-account
// flow (FCM), ES256 for APNs provider tokens. Only signing: the services verify.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pv::workers::providers {

class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PrivateKey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// A PEM private key (PKCS#8 "BEGIN PRIVATE KEY", or the traditional RSA/EC forms). Throws KeyError.
PrivateKey LoadPrivateKeyPem(std::string_view pem);

enum class JwtAlgorithm { kRs256, kEs256 };

// header.claims.signature, each part base64url. `header_json` must name the same algorithm.
// ES256 signatures are the raw 64-byte r||s form JWS requires, not DER. Throws KeyError when the
// key does not fit the algorithm.
std::string SignJwt(JwtAlgorithm algorithm, std::string_view header_json, std::string_view claims_json,
                    EVP_PKEY* key);

}  // namespace pv::workers::providers
