// The process's metrics (Prometheus, prometheus-cpp's core): one registry,
// read by the monitoring listener's /metrics. Names follow
// a3_<subsystem>_<what>_<unit> (docs/monitoring.md lists them); a few also
// carry the deployment guide's names (stalwart_*) so that its dashboards
// and alert rules work as written.
//
// Recording is cheap and thread-safe. Label values come from fixed sets (a
// protocol, a command of a protocol's table, a result class), never from
// what a client sent: a metric must not grow with hostile input.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace a3::metrics {

prometheus::Registry& registry();

// A family's metric with these labels, created on first use. The same name
// must always come with the same help text and kind.
prometheus::Counter& counter(const std::string& name, const std::string& help,
                             const prometheus::Labels& labels = {});
prometheus::Gauge& gauge(const std::string& name, const std::string& help,
                         const prometheus::Labels& labels = {});
// Buckets for latencies, in seconds: 100 µs to 30 s.
prometheus::Histogram& latency(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels = {});
// Buckets for sizes, in bytes: 1 KiB to 64 MiB.
prometheus::Histogram& sizes(const std::string& name, const std::string& help,
                             const prometheus::Labels& labels = {});

double seconds_since(std::chrono::steady_clock::time_point start);

// ---- what the frontends record ----

void connection_opened(std::string_view protocol);
void connection_closed(std::string_view protocol);
// reason: "limit" (total or per IP), "blocked" (a blocked network).
void connection_refused(std::string_view protocol, std::string_view reason);
// result: "ok", "no", "bad" (IMAP), "2xx" ... "5xx" (SMTP), "ok"/"err" (POP3).
// A negative `seconds` counts the command without timing it (IMAP IDLE).
void command_done(std::string_view protocol, std::string_view command, std::string_view result,
                  double seconds);
// result: "success", "failure" or "refused_limit" (the account's sessions).
void login(std::string_view protocol, std::string_view result);
// A message through SMTP: "accepted", or "rejected" with a reason class.
void smtp_message(std::string_view result, std::string_view reason, std::size_t bytes);
// Something went wrong that an operator should see (the guide's errors_total).
void error(std::string_view component);

// The series dashboards and alerts expect from the start, at their zero
// values (rather than no data until the first event).
void init_defaults();

// The registry in Prometheus's text format (version 0.0.4).
std::string serialize();

}  // namespace a3::metrics
