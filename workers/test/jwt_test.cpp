#include "pv/workers/providers/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#include <vector>

#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {
namespace {

std::string Pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string Base64UrlDecode(std::string s) {
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (s.size() % 4 != 0) s += '=';
  std::string out(s.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  while (!s.empty() && s.back() == '=') {
    s.pop_back();
    out.pop_back();
  }
  return out;
}

bool Verify(EVP_PKEY* key, const std::string& input, const std::string& signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

TEST(JwtTest, Rs256SignatureVerifiesWithThePublicKey) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  PrivateKey loaded = LoadPrivateKeyPem(Pem(key));
  std::string jwt =
      SignJwt(JwtAlgorithm::kRs256, R"({"alg":"RS256","typ":"JWT"})", R"({"iss":"x"})", loaded.get());
  auto dot1 = jwt.find('.');
  auto dot2 = jwt.rfind('.');
  EXPECT_EQ(Base64UrlDecode(jwt.substr(0, dot1)), R"({"alg":"RS256","typ":"JWT"})");
  EXPECT_EQ(Base64UrlDecode(jwt.substr(dot1 + 1, dot2 - dot1 - 1)), R"({"iss":"x"})");
  EXPECT_EQ(jwt.find('='), std::string::npos);
  EXPECT_TRUE(Verify(key, jwt.substr(0, dot2), Base64UrlDecode(jwt.substr(dot2 + 1))));
  EXPECT_FALSE(Verify(key, jwt.substr(0, dot2) + "x", Base64UrlDecode(jwt.substr(dot2 + 1))));
  EXPECT_THROW(SignJwt(JwtAlgorithm::kEs256, "{}", "{}", loaded.get()), KeyError);
  EVP_PKEY_free(key);
}

TEST(JwtTest, Es256SignatureIsRawRAndS) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  PrivateKey loaded = LoadPrivateKeyPem(Pem(key));
  std::string jwt =
      SignJwt(JwtAlgorithm::kEs256, R"({"alg":"ES256","kid":"K"})", R"({"iss":"T","iat":1})", loaded.get());
  auto dot2 = jwt.rfind('.');
  std::string raw = Base64UrlDecode(jwt.substr(dot2 + 1));
  ASSERT_EQ(raw.size(), 64U);
  // Back to DER to verify with OpenSSL.
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  std::string der_sig(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  EXPECT_TRUE(Verify(key, jwt.substr(0, dot2), der_sig));
  EVP_PKEY_free(key);
}

TEST(JwtTest, RejectsWhatIsNotAPrivateKey) {
  EXPECT_THROW(LoadPrivateKeyPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), KeyError);
  EXPECT_THROW(LoadPrivateKeyPem(""), KeyError);
}

}  // namespace
}  // namespace pv::workers::providers
