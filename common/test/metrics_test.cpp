#include "pv/metrics.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "pv/build_info.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PV_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PV_SANITIZED 1
#endif
#endif
#ifndef PV_SANITIZED
#define PV_SANITIZED 0
#endif

namespace pv::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MetricsTest, CounterAndGaugeValues) {
  Counter c;
  EXPECT_EQ(c.Value(), 0.0);
  c.Inc();
  c.Inc(2.5);
  EXPECT_EQ(c.Value(), 3.5);

  Gauge g;
  g.Set(10);
  g.Add(-4);
  g.Add(0.5);
  EXPECT_EQ(g.Value(), 6.5);
  g.Set(-1);
  EXPECT_EQ(g.Value(), -1.0);
}

TEST(MetricsTest, CounterIsExactUnderConcurrentIncrements) {
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 10000; ++i) c.Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), 40000.0);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Histogram h({1.0, 0.1, 0.5});  // sorted on construction
  EXPECT_THAT(h.bounds(), ElementsAre(0.1, 0.5, 1.0));
  for (double v : {0.05, 0.1, 0.3, 0.5, 0.9, 1.0, 7.0, 100.0}) h.Observe(v);
  // le=0.1: 0.05, 0.1 | le=0.5: +0.3, 0.5 | le=1: +0.9, 1.0 | +Inf: +7, 100
  EXPECT_THAT(h.CumulativeCounts(), ElementsAre(2U, 4U, 6U, 8U));
  EXPECT_EQ(h.Count(), 8U);
  EXPECT_DOUBLE_EQ(h.Sum(), 0.05 + 0.1 + 0.3 + 0.5 + 0.9 + 1.0 + 7.0 + 100.0);
}

TEST(MetricsTest, EmptyHistogram) {
  Histogram h({1.0});
  EXPECT_THAT(h.CumulativeCounts(), ElementsAre(0U, 0U));
  EXPECT_EQ(h.Count(), 0U);
  EXPECT_EQ(h.Sum(), 0.0);
}

// Up to 60 s: a send that waited for SMTP's 30 s timeout must not vanish into +Inf; still fine below
// a second, where ingest's acknowledgements and most provider answers are.
TEST(MetricsTest, LatencyBucketsAreAscendingFromHalfAMillisecondToAMinute) {
  auto b = LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 60.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_EQ(std::adjacent_find(b.begin(), b.end()), b.end());
  EXPECT_NE(std::find(b.begin(), b.end(), 30.0), b.end()) << "SMTP's default timeout";
  EXPECT_GE(std::count_if(b.begin(), b.end(), [](double v) { return v < 1.0; }), 10);
}

TEST(MetricsTest, FamilyWithReturnsOneSeriesPerLabelValues) {
  Registry r;
  auto& f = r.AddCounter("pv_x_total", "X.", {"a"});
  Counter& one = f.With({"1"});
  Counter& again = f.With({"1"});
  Counter& two = f.With({"2"});
  EXPECT_EQ(&one, &again);
  EXPECT_NE(&one, &two);
  one.Inc();
  EXPECT_EQ(f.With({"1"}).Value(), 1.0);
  EXPECT_EQ(two.Value(), 0.0);
  EXPECT_EQ(f.name(), "pv_x_total");
  EXPECT_EQ(f.help(), "X.");
  EXPECT_THAT(f.label_names(), ElementsAre("a"));
}

TEST(MetricsTest, RenderIsExactPrometheusText) {
  Registry r;
  auto& requests = r.AddCounter("pv_requests_total", "Requests by route and code.", {"route", "code"});
  requests.With({"trigger", "202"}).Inc();
  requests.With({"trigger", "202"}).Inc(2);
  requests.With({"batch", "400"}).Inc();
  auto& in_flight = r.AddGauge("pv_in_flight", "Records in flight.");
  in_flight.Get().Set(7);
  in_flight.Get().Add(-2);
  r.AddCallbackGauge("pv_queue_length", "Queue length.", [] { return 12.5; });
  auto& latency = r.AddHistogram("pv_latency_seconds", "Latency.", {"route"}, {1, 0.125, 0.5});
  for (double v : {0.0625, 0.125, 0.75, 3.0}) latency.With({"trigger"}).Observe(v);
  auto& plain = r.AddHistogram("pv_size_bytes", "Sizes.", {}, {100});
  plain.Get().Observe(100);

  EXPECT_EQ(r.Render(),
            "# HELP pv_requests_total Requests by route and code.\n"
            "# TYPE pv_requests_total counter\n"
            "pv_requests_total{route=\"batch\",code=\"400\"} 1\n"
            "pv_requests_total{route=\"trigger\",code=\"202\"} 3\n"
            "# HELP pv_in_flight Records in flight.\n"
            "# TYPE pv_in_flight gauge\n"
            "pv_in_flight 5\n"
            "# HELP pv_queue_length Queue length.\n"
            "# TYPE pv_queue_length gauge\n"
            "pv_queue_length 12.5\n"
            "# HELP pv_latency_seconds Latency.\n"
            "# TYPE pv_latency_seconds histogram\n"
            "pv_latency_seconds_bucket{route=\"trigger\",le=\"0.125\"} 2\n"
            "pv_latency_seconds_bucket{route=\"trigger\",le=\"0.5\"} 2\n"
            "pv_latency_seconds_bucket{route=\"trigger\",le=\"1\"} 3\n"
            "pv_latency_seconds_bucket{route=\"trigger\",le=\"+Inf\"} 4\n"
            "pv_latency_seconds_sum{route=\"trigger\"} 3.9375\n"
            "pv_latency_seconds_count{route=\"trigger\"} 4\n"
            "# HELP pv_size_bytes Sizes.\n"
            "# TYPE pv_size_bytes histogram\n"
            "pv_size_bytes_bucket{le=\"100\"} 1\n"
            "pv_size_bytes_bucket{le=\"+Inf\"} 1\n"
            "pv_size_bytes_sum 100\n"
            "pv_size_bytes_count 1\n");
}

TEST(MetricsTest, RenderEscapesLabelValues) {
  Registry r;
  r.AddCounter("pv_c_total", "C.", {"v"}).With({"a\"b\\c\nd"}).Inc();
  EXPECT_THAT(r.Render(), HasSubstr("pv_c_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsTest, RenderEscapesHelpText) {
  // The text format allows any help text but requires '\' and line feeds escaped; a raw line feed
  // would end the HELP line and make the rest an invalid sample line.
  Registry r;
  r.AddGauge("pv_g", "first line\nsecond C:\\dir").Get().Set(1);
  EXPECT_THAT(r.Render(), HasSubstr("# HELP pv_g first line\\nsecond C:\\\\dir\n# TYPE pv_g gauge\n"));
}

TEST(MetricsTest, RenderNumbers) {
  Registry r;
  r.AddGauge("pv_frac", "F.").Get().Set(0.001);
  r.AddGauge("pv_neg", "N.").Get().Set(-3);
  r.AddGauge("pv_zero", "Z.").Get().Set(0);
  r.AddCallbackGauge("pv_inf", "I.", [] { return std::numeric_limits<double>::infinity(); });
  r.AddHistogram("pv_h", "H.", {}, {0.0005, 2.5}).Get();
  std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("\npv_frac 0.001\n"));
  EXPECT_THAT(text, HasSubstr("\npv_neg -3\n"));
  EXPECT_THAT(text, HasSubstr("\npv_zero 0\n"));
  EXPECT_THAT(text, HasSubstr("\npv_inf +Inf\n"));
  EXPECT_THAT(text, HasSubstr("\npv_h_bucket{le=\"0.0005\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\npv_h_bucket{le=\"2.5\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\npv_h_sum 0\n"));
}

TEST(MetricsTest, CallbackGaugeIsReadAtEveryRender) {
  Registry r;
  double value = 1;
  r.AddCallbackGauge("pv_cb", "CB.", [&value] { return value; });
  EXPECT_THAT(r.Render(), HasSubstr("\npv_cb 1\n"));
  value = 42;
  EXPECT_THAT(r.Render(), HasSubstr("\npv_cb 42\n"));
}

// The value of an unlabelled sample in Prometheus text, or -1.
double Sample(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

// Every binary's /metrics ends with these (AdminServer); tests/ingest's IngestProcess test checks them
// in a running pv-ingest, with its pid.
TEST(MetricsTest, ProcessMetricsHaveThePrometheusNamesAndSaneValues) {
  std::string text = RenderProcessMetrics();
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  for (const char* gauge :
       {"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds",
        "process_max_fds", "process_start_time_seconds", "pv_build_info"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + gauge + " gauge\n")) << gauge;
  }
  EXPECT_THAT(text, HasSubstr("pv_build_info{version=\"" + std::string(build::Version()) + "\",commit=\"" +
                              std::string(build::Commit()) + "\",allocator=\"" +
                              std::string(build::Allocator()) + "\"} 1\n"));
#if !PV_SANITIZED
  // Tests are not linked with the services' allocator (CMakeLists.txt, pv_link_malloc): glibc's serves
  // them, and Allocator must say so rather than name a library that is merely loaded.
  EXPECT_EQ(build::Allocator(), "glibc");
#endif
  EXPECT_FALSE(build::Version().empty());
  EXPECT_FALSE(build::Commit().empty());

  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  double start = Sample(text, "process_start_time_seconds");
  EXPECT_GT(start, now - 600);  // this test process started a moment ago (gtest runs each test alone)
  EXPECT_LT(start, now + 2);
  // A descriptor opened now is counted at the next call.
  double fds = Sample(text, "process_open_fds");
  EXPECT_GT(fds, 0);
  int extra = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(extra, 0);
  EXPECT_EQ(Sample(RenderProcessMetrics(), "process_open_fds"), fds + 1);
  ::close(extra);
  EXPECT_GE(Sample(text, "process_max_fds"), fds);
  double rss = Sample(text, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_GE(Sample(text, "process_virtual_memory_bytes"), rss);
  // 64 MiB touched shows in the resident size.
  std::vector<char> touched(64 << 20, 1);
  EXPECT_GT(Sample(RenderProcessMetrics(), "process_resident_memory_bytes"), rss + (48 << 20));
  EXPECT_EQ(touched.back(), 1);

  // CPU time grows with work, at microsecond resolution (getrusage), not only per 10 ms tick.
  double cpu = Sample(text, "process_cpu_seconds_total");
  EXPECT_GE(cpu, 0);
  // Spin for 20 ms of this process's CPU time (clock_gettime's own count; at most 5 s of wall time on a
  // loaded machine).
  auto cpu_now = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  double spun_from = cpu_now();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  volatile std::uint64_t spin = 0;
  while (cpu_now() < spun_from + 0.02 && std::chrono::steady_clock::now() < deadline) spin = spin + 1;
  double later = Sample(RenderProcessMetrics(), "process_cpu_seconds_total");
  EXPECT_GE(later, cpu + 0.015);
}

}  // namespace
}  // namespace pv::metrics
