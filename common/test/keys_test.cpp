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

// ---- the merge rule: the newest state of a key wins, across keys_file and pv.keys ----

ApiKey Versioned(const std::string& plain, std::int64_t updated_at_ms, bool revoked = false) {
  ApiKey k = MakeKey("key_m", plain, KeyScope::kSecret, revoked ? "2026-12-01T00:00:00.000Z" : "");
  k.updated_at_ms = updated_at_ms;
  return k;
}

ApiKey Tombstone(std::int64_t updated_at_ms) {
  ApiKey k;
  k.id = "key_m";
  k.deleted = true;
  k.updated_at_ms = updated_at_ms;
  return k;
}

// The file is merged first, the topic second (as ingest and pvctl do).
KeyStore::Result Merged(const std::vector<ApiKey>& file, const std::vector<ApiKey>& topic,
                        const std::string& plain) {
  std::vector<ApiKey> all = file;
  all.insert(all.end(), topic.begin(), topic.end());
  return KeyStore::FromKeys(all)->Authenticate(plain).result;
}

TEST(KeyMerge, AFileRevokeNewerThanTheTopicsActiveRecordWins) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  // Before: the topic, merged last, always won, so this was kOk.
  EXPECT_EQ(Merged({Versioned(plain, 2000, true)}, {Versioned(plain, 1000)}, plain),
            KeyStore::Result::kRevoked);
}

TEST(KeyMerge, ATopicRevokeNewerThanTheFilesActiveEntryWins) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  EXPECT_EQ(Merged({Versioned(plain, 1000)}, {Versioned(plain, 2000, true)}, plain),
            KeyStore::Result::kRevoked);
}

TEST(KeyMerge, TheNewerStateWinsWhicheverSourceHasIt) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  // No operation re-activates a key today, but the rule is symmetric: a newer active state wins too.
  EXPECT_EQ(Merged({Versioned(plain, 3000)}, {Versioned(plain, 2000, true)}, plain), KeyStore::Result::kOk);
  EXPECT_EQ(Merged({Versioned(plain, 2000, true)}, {Versioned(plain, 3000)}, plain), KeyStore::Result::kOk);
  // And within one source (a topic read in offset order), a stale state republished late loses.
  EXPECT_EQ(Merged({}, {Versioned(plain, 2000, true), Versioned(plain, 1000)}, plain),
            KeyStore::Result::kRevoked);
}

TEST(KeyMerge, OnATieRevokedBeatsActiveInEitherOrder) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  EXPECT_EQ(Merged({Versioned(plain, 1000, true)}, {Versioned(plain, 1000)}, plain),
            KeyStore::Result::kRevoked);
  EXPECT_EQ(Merged({Versioned(plain, 1000)}, {Versioned(plain, 1000, true)}, plain),
            KeyStore::Result::kRevoked);
  EXPECT_TRUE(KeySupersedes(Versioned(plain, 1000, true), Versioned(plain, 1000)));
  EXPECT_FALSE(KeySupersedes(Versioned(plain, 1000), Versioned(plain, 1000, true)));
  EXPECT_TRUE(KeySupersedes(Tombstone(1000), Versioned(plain, 1000, true)));
  EXPECT_FALSE(KeySupersedes(Versioned(plain, 1000, true), Tombstone(1000)));
}

TEST(KeyMerge, LegacyStatesWithoutAVersionAreTheOldest) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  // Written before updated_at_ms existed: 0.
  EXPECT_EQ(Merged({Versioned(plain, 0)}, {Versioned(plain, 5, true)}, plain), KeyStore::Result::kRevoked);
  EXPECT_EQ(Merged({Versioned(plain, 5, true)}, {Versioned(plain, 0)}, plain), KeyStore::Result::kRevoked);
  EXPECT_EQ(Merged({Versioned(plain, 0, true)}, {Versioned(plain, 5)}, plain), KeyStore::Result::kOk);
  // Two legacy states: a tie, so a revoke in either place wins (the topic no longer overrides it).
  EXPECT_EQ(Merged({Versioned(plain, 0, true)}, {Versioned(plain, 0)}, plain), KeyStore::Result::kRevoked);
  // And a legacy record still parses, as the oldest state.
  ApiKey got;
  std::string error;
  std::string legacy = KeyRecord(Versioned(plain, 0));
  legacy = legacy.substr(0, legacy.find(",\"updated_at_ms\"")) + "}";
  ASSERT_TRUE(ParseKeyRecord(legacy, got, error)) << error << " " << legacy;
  EXPECT_EQ(got.updated_at_ms, 0);
}

TEST(KeyMerge, ATombstoneDropsTheKeyUnlessTheFileHasANewerState) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  EXPECT_EQ(Merged({Versioned(plain, 1000)}, {Versioned(plain, 1000), Tombstone(2000)}, plain),
            KeyStore::Result::kUnknown);
  EXPECT_EQ(Merged({Versioned(plain, 0)}, {Tombstone(0)}, plain), KeyStore::Result::kUnknown);  // tie
  EXPECT_EQ(Merged({Versioned(plain, 3000, true)}, {Tombstone(2000)}, plain), KeyStore::Result::kRevoked);
  // Other keys are untouched, and the store holds no deleted entry.
  std::string other = GenerateKey(KeyScope::kSecret);
  ApiKey other_key = MakeKey("key_o", other, KeyScope::kSecret);
  auto store = KeyStore::FromKeys({Versioned(plain, 1), other_key, Tombstone(2)});
  EXPECT_EQ(store->Authenticate(other).result, KeyStore::Result::kOk);
  ASSERT_EQ(store->keys().size(), 1U);
  EXPECT_EQ(store->keys()[0].id, "key_o");
  // MergeKeyStates keeps the deletion, for a later merge with another source.
  auto merged = MergeKeyStates({Versioned(plain, 1), Tombstone(2)});
  ASSERT_EQ(merged.size(), 1U);
  EXPECT_TRUE(merged[0].deleted);
}

TEST(KeyMerge, NextVersionIsAfterThePreviousEvenWithASlowClock) {
  EXPECT_EQ(NextKeyVersion(0, 5000), 5000);
  EXPECT_EQ(NextKeyVersion(4999, 5000), 5000);
  EXPECT_EQ(NextKeyVersion(5000, 5000), 5001);  // the same millisecond
  EXPECT_EQ(NextKeyVersion(9000, 5000), 9001);  // written by a machine whose clock is ahead
}

TEST(KeyMerge, VersionsRoundTripThroughTheFileAndTheRecord) {
  TempDir dir;
  std::string plain = GenerateKey(KeyScope::kSecret);
  KeyStore::SaveFile(dir / "keys.yaml",
                     {Versioned(plain, 1764672000123, true), MakeKey("key_l", plain, KeyScope::kSecret)});
  auto loaded = KeyStore::LoadFile(dir / "keys.yaml")->keys();
  ASSERT_EQ(loaded.size(), 2U);
  EXPECT_EQ(loaded[0].updated_at_ms, 1764672000123);
  EXPECT_EQ(loaded[1].updated_at_ms, 0);  // a legacy entry stays one
  EXPECT_THAT(ReadFile(dir / "keys.yaml"), HasSubstr("updated_at_ms: 1764672000123"));
  ApiKey got;
  std::string error;
  ASSERT_TRUE(ParseKeyRecord(KeyRecord(loaded[0]), got, error)) << error;
  EXPECT_EQ(got.updated_at_ms, 1764672000123);
  EXPECT_TRUE(got.revoked());
  std::string record = KeyRecord(loaded[0]);
  record.replace(record.find("1764672000123"), 13, "\"soon\"");
  EXPECT_FALSE(ParseKeyRecord(record, got, error));
  EXPECT_THAT(error, HasSubstr("updated_at_ms must be a number of milliseconds"));
  WriteFile(dir / "bad.yaml", "keys:\n  - id: k\n    project: demo\n    scope: secret\n    hash: sha256:" +
                                  std::string(64, 'a') + "\n    updated_at_ms: -5\n");
  EXPECT_THAT(ErrorMessage<KeyError>([&] { KeyStore::LoadFile(dir / "bad.yaml"); }),
              HasSubstr("keys[0].updated_at_ms must be a number of milliseconds"));
}

TEST(KeyMerge, TopicRecordsAndTombstonesAsStates) {
  std::string plain = GenerateKey(KeyScope::kSecret);
  std::string value = KeyRecord(Versioned(plain, 1000));
  ApiKey got;
  std::string error;
  ASSERT_TRUE(ParseKeyState({"key_m", value, std::nullopt, 123}, got, error)) << error;
  EXPECT_FALSE(got.deleted);
  EXPECT_EQ(got.updated_at_ms, 1000);
  // A record filed under another key than its id would survive the key's own tombstone.
  EXPECT_FALSE(ParseKeyState({"key_x", value, std::nullopt, 123}, got, error));
  EXPECT_THAT(error, HasSubstr("does not match"));
  // A tombstone: versioned by its header, else by the record's timestamp.
  ASSERT_TRUE(ParseKeyState({"key_m", std::nullopt, "2000", 123}, got, error)) << error;
  EXPECT_TRUE(got.deleted);
  EXPECT_EQ(got.id, "key_m");
  EXPECT_EQ(got.updated_at_ms, 2000);
  ASSERT_TRUE(ParseKeyState({"key_m", std::nullopt, std::nullopt, 1500}, got, error)) << error;
  EXPECT_EQ(got.updated_at_ms, 1500);
  EXPECT_FALSE(ParseKeyState({"key_m", std::nullopt, "later", 1500}, got, error));
  EXPECT_FALSE(ParseKeyState({"", std::nullopt, "2000", 1500}, got, error));
}

// Ingest consumes pv.keys from any producer: 1 MB of '[' overflowed its stack.
TEST(KeysTest, DeeplyNestedKeyRecordIsRefusedNotParsed) {
  ApiKey got;
  std::string error;
  EXPECT_FALSE(ParseKeyRecord(std::string(1 << 20, '['), got, error));
}

}  // namespace
}  // namespace pv
