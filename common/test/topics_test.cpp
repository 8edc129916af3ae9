#include "pv/topics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pv {
namespace {

using ::testing::Contains;
using ::testing::Field;

TEST(TopicsTest, ChannelNamesAndTopicSuffixes) {
  EXPECT_EQ(ChannelName(Channel::kEmail), "email");
  EXPECT_EQ(ChannelName(Channel::kSms), "text");
  EXPECT_EQ(ChannelName(Channel::kPush), "push");
  EXPECT_EQ(ChannelTopicSuffix(Channel::kEmail), "email");
  EXPECT_EQ(ChannelTopicSuffix(Channel::kSms), "sms");
  EXPECT_EQ(ChannelTopicSuffix(Channel::kPush), "push");
}

TEST(TopicsTest, ParseChannel) {
  Channel c = Channel::kPush;
  EXPECT_TRUE(ParseChannel("email", c));
  EXPECT_EQ(c, Channel::kEmail);
  EXPECT_TRUE(ParseChannel("text", c));
  EXPECT_EQ(c, Channel::kSms);
  EXPECT_TRUE(ParseChannel("sms", c));
  EXPECT_EQ(c, Channel::kSms);
  EXPECT_TRUE(ParseChannel("push", c));
  EXPECT_EQ(c, Channel::kPush);
  for (const char* bad : {"", "Email", "fax", "emails", " push"}) EXPECT_FALSE(ParseChannel(bad, c)) << bad;
}

TEST(TopicsTest, TopicNames) {
  EXPECT_EQ(topics::Send(Channel::kEmail), "pv.send.email");
  EXPECT_EQ(topics::Send(Channel::kSms), "pv.send.sms");
  EXPECT_EQ(topics::Send(Channel::kPush), "pv.send.push");
  EXPECT_EQ(topics::DeadLetter(Channel::kSms), "pv.dlq.sms");
  EXPECT_EQ(topics::Delay("30s"), "pv.delay.30s");
  EXPECT_EQ(topics::kTriggers, "pv.triggers");
  EXPECT_EQ(topics::kEvents, "pv.events");
}

TEST(TopicsTest, DefaultTopicsCoverThePipeline) {
  auto all = topics::DefaultTopics();
  for (const char* name : {"pv.triggers", "pv.events", "pv.keys", "pv.campaigns", "pv.send.email",
                           "pv.send.sms", "pv.send.push", "pv.dlq.email", "pv.dlq.sms", "pv.dlq.push",
                           "pv.delay.5s", "pv.delay.30s", "pv.delay.2m", "pv.delay.10m", "pv.delay.1h",
                           "pv.receipts"}) {
    EXPECT_THAT(all, Contains(Field(&topics::TopicSpec::name, name))) << name;
  }
  EXPECT_EQ(all.size(), 16U);
  for (const auto& t : all) {
    EXPECT_GT(t.partitions, 0) << t.name;
    EXPECT_EQ(t.compacted, t.name == "pv.keys" || t.name == "pv.campaigns") << t.name;
  }
}

}  // namespace
}  // namespace pv
