#include "common/metrics.h"

#include <map>
#include <mutex>
#include <sstream>

#include <prometheus/text_serializer.h>

namespace a3::metrics {

namespace {

auto builder(prometheus::Counter*) {
  return prometheus::BuildCounter();
}
auto builder(prometheus::Gauge*) {
  return prometheus::BuildGauge();
}
auto builder(prometheus::Histogram*) {
  return prometheus::BuildHistogram();
}

// Families by name, created once; prometheus-cpp's Family::Add finds or
// adds the labelled metric under its own lock.
template <typename T>
struct Families {
  std::mutex mu;
  std::map<std::string, prometheus::Family<T>*, std::less<>> byname;

  prometheus::Family<T>& get(const std::string& name, const std::string& help) {
    std::lock_guard lock(mu);
    auto it = byname.find(name);
    if (it != byname.end()) return *it->second;
    auto& f = builder(static_cast<T*>(nullptr)).Name(name).Help(help).Register(registry());
    byname.emplace(name, &f);
    return f;
  }
};

Families<prometheus::Counter>& counters() {
  static Families<prometheus::Counter> f;
  return f;
}
Families<prometheus::Gauge>& gauges() {
  static Families<prometheus::Gauge> f;
  return f;
}
Families<prometheus::Histogram>& histograms() {
  static Families<prometheus::Histogram> f;
  return f;
}

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return b;
}

const prometheus::Histogram::BucketBoundaries& size_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};
  return b;
}

std::string str(std::string_view s) {
  return std::string(s);
}

}  // namespace

prometheus::Registry& registry() {
  static prometheus::Registry r;
  return r;
}

prometheus::Counter& counter(const std::string& name, const std::string& help,
                             const prometheus::Labels& labels) {
  return counters().get(name, help).Add(labels);
}

prometheus::Gauge& gauge(const std::string& name, const std::string& help,
                         const prometheus::Labels& labels) {
  return gauges().get(name, help).Add(labels);
}

prometheus::Histogram& latency(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels) {
  return histograms().get(name, help).Add(labels, latency_buckets());
}

prometheus::Histogram& sizes(const std::string& name, const std::string& help,
                             const prometheus::Labels& labels) {
  return histograms().get(name, help).Add(labels, size_buckets());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void connection_opened(std::string_view protocol) {
  counter("a3_connections_total", "Connections accepted and refused, by protocol and result",
          {{"protocol", str(protocol)}, {"result", "accepted"}})
      .Increment();
  gauge("a3_connections_open", "Connections open now, by protocol", {{"protocol", str(protocol)}})
      .Increment();
}

void connection_closed(std::string_view protocol) {
  gauge("a3_connections_open", "Connections open now, by protocol", {{"protocol", str(protocol)}})
      .Decrement();
}

void connection_refused(std::string_view protocol, std::string_view reason) {
  counter("a3_connections_total", "Connections accepted and refused, by protocol and result",
          {{"protocol", str(protocol)}, {"result", "refused_" + str(reason)}})
      .Increment();
}

void command_done(std::string_view protocol, std::string_view command, std::string_view result,
                  double seconds) {
  counter("a3_commands_total", "Commands answered, by protocol, command and result",
          {{"protocol", str(protocol)}, {"command", str(command)}, {"result", str(result)}})
      .Increment();
  if (seconds < 0) return;
  latency("a3_command_duration_seconds",
          "Time from a command's arrival to its answer, by protocol and command",
          {{"protocol", str(protocol)}, {"command", str(command)}})
      .Observe(seconds);
}

void login(std::string_view protocol, std::string_view result) {
  counter("a3_auth_attempts_total", "Logins, by protocol and result",
          {{"protocol", str(protocol)}, {"result", str(result)}})
      .Increment();
}

void smtp_message(std::string_view result, std::string_view reason, std::size_t bytes) {
  counter("a3_smtp_messages_total", "Messages through SMTP, by result and reason",
          {{"result", str(result)}, {"reason", str(reason)}})
      .Increment();
  if (result == "accepted") {
    sizes("a3_smtp_message_size_bytes", "Sizes of the messages SMTP accepted")
        .Observe(static_cast<double>(bytes));
    counter("stalwart_emails_processed_total",
            "The deployment guide's name: messages accepted (a3_smtp_messages_total)")
        .Increment();
  }
}

void error(std::string_view component) {
  counter("a3_errors_total", "Errors an operator should look at, by component",
          {{"component", str(component)}})
      .Increment();
  counter("stalwart_errors_total", "The deployment guide's name for a3_errors_total").Increment();
}

void init_defaults() {
  counter("a3_errors_total", "Errors an operator should look at, by component",
          {{"component", "eventlog"}});
  counter("stalwart_errors_total", "The deployment guide's name for a3_errors_total");
  counter("stalwart_emails_processed_total",
          "The deployment guide's name: messages accepted (a3_smtp_messages_total)");
  gauge("a3_config_last_reload_successful",
        "1 if the last SIGHUP reload was applied, 0 if it was refused")
      .Set(1);
  latency("a3_eventlog_append_duration_seconds",
          "Time until an appended event is durable in the log");
  sizes("a3_smtp_message_size_bytes", "Sizes of the messages SMTP accepted");
  for (const char* protocol : {"smtp", "submission", "imap", "pop3"}) {
    for (const char* result : {"success", "failure"})
      counter("a3_auth_attempts_total", "Logins, by protocol and result",
              {{"protocol", protocol}, {"result", result}});
  }
}

std::string serialize() {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry().Collect());
  return out.str();
}

}  // namespace a3::metrics
