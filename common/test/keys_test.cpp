#include "pv/keys.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "test_util.hpp"

namespace pv {
namespace {

using ::pv::testing::ErrorMessage;
using ::pv::testing::ReadFile;
using ::pv::testing::TempDir;
using ::pv::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;

ApiKey MakeKey(const std::string& id, const std::string& plain, KeyScope scope,
               const std::string& revoked_at = "") {
  ApiKey k;
  k.id = id;
  k.name = "label " + id;
  k.project = "demo";
  k.scope = scope;
  k.hash = HashKey(plain);
  k.last4 = plain.substr(plain.size() - 4);
  k.created_at = "2026-11-26T07:54:38.123Z";
  k.revoked_at = revoked_at;
  return k;
}

TEST(KeysTest, GenerateKeyShape) {
  const std::regex secret("^sk_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  const std::regex pub("^pk_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  std::string a = GenerateKey(KeyScope::kSecret);
  std::string b = GenerateKey(KeyScope::kSecret);
  std::string p = GenerateKey(KeyScope::kPublic);
  EXPECT_TRUE(std::regex_match(a, secret)) << a;
  EXPECT_TRUE(std::regex_match(p, pub)) << p;
  EXPECT_NE(a, b);
  EXPECT_TRUE(LooksLikeKey(a));
  EXPECT_TRUE(LooksLikeKey(p));
}

TEST(KeysTest, LooksLikeKey) {
  EXPECT_TRUE(LooksLikeKey("sk_" + std::string(16, 'a')));
  EXPECT_TRUE(LooksLikeKey("pk_" + std::string(128, 'Z')));
  EXPECT_TRUE(LooksLikeKey("sk_AZaz09_-AZaz09_-"));
  EXPECT_FALSE(LooksLikeKey("sk_" + std::string(15, 'a')));
  EXPECT_FALSE(LooksLikeKey("pk_" + std::string(129, 'a')));
  EXPECT_FALSE(LooksLikeKey(""));
  EXPECT_FALSE(LooksLikeKey("xk_" + std::string(20, 'a')));
  EXPECT_FALSE(LooksLikeKey("SK_" + std::string(20, 'a')));
  EXPECT_FALSE(LooksLikeKey("sk-" + std::string(20, 'a')));
  EXPECT_FALSE(LooksLikeKey("sk_" + std::string(20, 'a') + "."));
  EXPECT_FALSE(LooksLikeKey("sk_" + std::string(20, 'a') + " "));
  EXPECT_FALSE(LooksLikeKey("Bearer sk_" + std::string(20, 'a')));
}

TEST(KeysTest, HashKeyIsPrefixedSha256) {
  EXPECT_EQ(HashKey("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string key = GenerateKey(KeyScope::kSecret);
  EXPECT_TRUE(std::regex_match(HashKey(key), std::regex("^sha256:[0-9a-f]{64}$")));
  EXPECT_NE(HashKey(key), HashKey(GenerateKey(KeyScope::kSecret)));
}

TEST(KeysTest, SaveThenLoadRoundTrips) {
  TempDir dir;
  std::string path = dir / "keys.yaml";
  std::string live = GenerateKey(KeyScope::kSecret);
  std::string pub = GenerateKey(KeyScope::kPublic);
  std::string old = GenerateKey(KeyScope::kSecret);
  std::vector<ApiKey> keys = {MakeKey("key_1", live, KeyScope::kSecret),
                              MakeKey("key_2", pub, KeyScope::kPublic),
                              MakeKey("key_3", old, KeyScope::kSecret, "2026-11-27T00:00:00.000Z")};
  KeyStore::SaveFile(path, keys);

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  std::string text = ReadFile(path);
  for (const auto& plain : {live, pub, old}) EXPECT_THAT(text, Not(HasSubstr(plain)));
  // No temporary file is left beside it.
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()),
      1);

  auto store = KeyStore::LoadFile(path);
  ASSERT_EQ(store->keys().size(), 3U);
  for (size_t i = 0; i < keys.size(); ++i) {
    const ApiKey& got = store->keys()[i];
    EXPECT_EQ(got.id, keys[i].id);
    EXPECT_EQ(got.name, keys[i].name);
    EXPECT_EQ(got.project, keys[i].project);
    EXPECT_EQ(got.scope, keys[i].scope);
    EXPECT_EQ(got.hash, keys[i].hash);
    EXPECT_EQ(got.last4, keys[i].last4);
    EXPECT_EQ(got.created_at, keys[i].created_at);
    EXPECT_EQ(got.revoked_at, keys[i].revoked_at);
  }
  EXPECT_FALSE(store->keys()[0].revoked());
  EXPECT_TRUE(store->keys()[2].revoked());
}

TEST(KeysTest, SaveReplacesAnExistingFileAndKeepsMode0600) {
  TempDir dir;
  std::string path = dir / "keys.yaml";
  WriteFile(path, "keys: []\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::string plain = GenerateKey(KeyScope::kSecret);
  KeyStore::SaveFile(path, {MakeKey("key_9", plain, KeyScope::kSecret)});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  EXPECT_EQ(KeyStore::LoadFile(path)->keys().size(), 1U);
}

TEST(KeysTest, SaveToAnUnwritableDirectoryIsAKeyError) {
  std::string message =
      ErrorMessage<KeyError>([] { KeyStore::SaveFile("/nonexistent-pv-dir/keys.yaml", {}); });
  EXPECT_THAT(message, HasSubstr("/nonexistent-pv-dir/keys.yaml"));
}

TEST(KeysTest, Authenticate) {
  TempDir dir;
  std::string path = dir / "keys.yaml";
  std::string live = GenerateKey(KeyScope::kSecret);
  std::string pub = GenerateKey(KeyScope::kPublic);
  std::string old = GenerateKey(KeyScope::kSecret);
  KeyStore::SaveFile(path,
                     {MakeKey("key_1", live, KeyScope::kSecret), MakeKey("key_2", pub, KeyScope::kPublic),
                      MakeKey("key_3", old, KeyScope::kSecret, "2026-11-27T00:00:00.000Z")});
  auto store = KeyStore::LoadFile(path);

  auto ok = store->Authenticate(live);
  EXPECT_EQ(ok.result, KeyStore::Result::kOk);
  ASSERT_NE(ok.key, nullptr);
  EXPECT_EQ(ok.key->id, "key_1");
  EXPECT_EQ(ok.key->scope, KeyScope::kSecret);

  auto p = store->Authenticate(pub);
  EXPECT_EQ(p.result, KeyStore::Result::kOk);
  ASSERT_NE(p.key, nullptr);
  EXPECT_EQ(p.key->scope, KeyScope::kPublic);

  auto revoked = store->Authenticate(old);
  EXPECT_EQ(revoked.result, KeyStore::Result::kRevoked);
  ASSERT_NE(revoked.key, nullptr);
  EXPECT_EQ(revoked.key->id, "key_3");

  for (const std::string& wrong : {GenerateKey(KeyScope::kSecret), live.substr(0, live.size() - 1),
                                   live + "x", std::string(), HashKey(live)}) {
    auto unknown = store->Authenticate(wrong);
    EXPECT_EQ(unknown.result, KeyStore::Result::kUnknown) << wrong;
    EXPECT_EQ(unknown.key, nullptr);
  }
}

// A record on pv.keys is loaded like an entry of the file: the same project rule.
TEST(KeysTest, KeyRecordWithAProjectOutsideTheRuleIsRefused) {
  ApiKey k = MakeKey("key_1", GenerateKey(KeyScope::kSecret), KeyScope::kSecret);
  ApiKey got;
  std::string error;
  ASSERT_TRUE(ParseKeyRecord(KeyRecord(k), got, error)) << error;
  EXPECT_EQ(got.project, "demo");
  k.project = "acme:eu";
  EXPECT_FALSE(ParseKeyRecord(KeyRecord(k), got, error));
  EXPECT_THAT(error, HasSubstr("project 'acme:eu' is not a project name: 1 to 64 of a-z, 0-9, '_' and '-'"));
}

TEST(KeysTest, MissingOrEmptyFileIsAnEmptyStore) {
  TempDir dir;
  EXPECT_TRUE(KeyStore::LoadFile(dir / "absent.yaml")->keys().empty());
  WriteFile(dir / "empty.yaml", "");
  EXPECT_TRUE(KeyStore::LoadFile(dir / "empty.yaml")->keys().empty());
  WriteFile(dir / "nolist.yaml", "keys:\n");
  EXPECT_TRUE(KeyStore::LoadFile(dir / "nolist.yaml")->keys().empty());
  EXPECT_EQ(KeyStore::LoadFile(dir / "absent.yaml")->Authenticate("sk_0000000000000000").result,
            KeyStore::Result::kUnknown);
}

class KeysBadFileTest : public ::testing::Test {
 protected:
  std::string Load(const std::string& content) {
    WriteFile(path_, content);
    std::string message = ErrorMessage<KeyError>([&] { KeyStore::LoadFile(path_); });
    EXPECT_THAT(message, HasSubstr(path_));
    return message;
  }
  static std::string Entry(const std::string& id, const std::string& extra = "") {
    return "  - id: " + id +
           "\n    project: demo\n    scope: secret\n    hash: sha256:" + std::string(64, 'a') + "\n" + extra;
  }
  TempDir dir_;
  std::string path_ = dir_ / "keys.yaml";
};

TEST_F(KeysBadFileTest, MissingRequiredFieldNamesTheEntry) {
  EXPECT_THAT(Load("keys:\n" + Entry("key_1") + "  - id: key_2\n    project: demo\n    scope: secret\n"),
              HasSubstr("keys[1].hash is required"));
  EXPECT_THAT(
      Load("keys:\n  - project: demo\n    scope: secret\n    hash: sha256:" + std::string(64, 'a') + "\n"),
      HasSubstr("keys[0].id is required"));
  EXPECT_THAT(Load("keys:\n" + Entry("key_1") + Entry("key_2") + "  - id: key_3\n    scope: public\n"),
              HasSubstr("keys[2].project is required"));
}

TEST_F(KeysBadFileTest, ProjectOutsideTheRuleNamesTheEntry) {
  EXPECT_THAT(
      Load("keys:\n" + Entry("key_1") + "  - id: key_2\n    project: \"acme:eu\"\n    scope: secret\n" +
           "    hash: sha256:" + std::string(64, 'a') + "\n"),
      HasSubstr("keys[1].project 'acme:eu' is not a project name: 1 to 64 of a-z, 0-9, '_' and '-'"));
  EXPECT_THAT(Load("keys:\n  - id: k\n    project: Demo\n    scope: secret\n    hash: sha256:" +
                   std::string(64, 'a') + "\n"),
              HasSubstr("keys[0].project 'Demo' is not a project name"));
}

TEST_F(KeysBadFileTest, BadScopeOrHashNamesTheEntry) {
  EXPECT_THAT(Load("keys:\n  - id: k\n    project: demo\n    scope: admin\n    hash: sha256:" +
                   std::string(64, 'a') + "\n"),
              HasSubstr("keys[0].scope must be secret or public"));
  EXPECT_THAT(Load("keys:\n" + Entry("key_1") +
                   "  - id: k\n    project: demo\n    scope: secret\n    hash: md5:abc\n"),
              HasSubstr("keys[1].hash must be sha256:<64 hex>"));
  EXPECT_THAT(Load("keys:\n  - id: k\n    project: demo\n    scope: secret\n    hash: sha256:" +
                   std::string(63, 'a') + "\n"),
              HasSubstr("keys[0].hash must be sha256:<64 hex>"));
}

TEST_F(KeysBadFileTest, WrongShapes) {
  EXPECT_THAT(Load("keys: not-a-list\n"), HasSubstr("expected a mapping with a 'keys' list"));
  EXPECT_THAT(Load("keys: [unclosed\n"), HasSubstr("keys file"));
  // A list at the top level (the 'keys:' line forgotten) must not load as an empty store.
  EXPECT_THAT(Load(Entry("key_1")), HasSubstr("expected a mapping with a 'keys' list"));
  EXPECT_THAT(Load("just a string\n"), HasSubstr("expected a mapping with a 'keys' list"));
  // A field that is not a string names the entry.
  EXPECT_THAT(Load("keys:\n" + Entry("key_1") + "  - id: {nested: map}\n    project: demo\n"),
              HasSubstr("keys[1].id must be a string"));
  EXPECT_THAT(Load("keys:\n" + Entry("key_1") + "  - just-a-string\n"),
              HasSubstr("keys[1] must be a mapping"));
}

// Ingest consumes pv.keys from any producer: 1 MB of '[' overflowed its stack.
TEST(KeysTest, DeeplyNestedKeyRecordIsRefusedNotParsed) {
  ApiKey got;
  std::string error;
  EXPECT_FALSE(ParseKeyRecord(std::string(1 << 20, '['), got, error));
}

}  // namespace
}  // namespace pv
