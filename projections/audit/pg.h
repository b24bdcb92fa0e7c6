// RAII around libpq's connection and results. Nothing here throws: errors
// are returned as text for the caller to log and retry.
#pragma once

#include <libpq-fe.h>

#include <utility>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace a3::projections::audit {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class Connection {
 public:
  // Connects; check ok() and error().
  explicit Connection(const std::string& url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const;
  std::string error() const;
  PGconn* raw() const { return conn_; }

  // Runs SQL without parameters; nullopt on success, else the error.
  std::optional<std::string> exec(const std::string& sql);
  // Runs SQL with text parameters (nullopt = NULL); the result, or the error.
  Result query(const std::string& sql, const std::vector<std::optional<std::string>>& params,
               std::string* error);
  // A quoted SQL literal for `s` (PQescapeLiteral).
  std::string literal(const std::string& s) const;
  // COPY ... FROM STDIN with `data` in text format; nullopt on success.
  std::optional<std::string> copy_in(const std::string& copy_sql, const std::string& data);

 private:
  PGconn* conn_ = nullptr;
};

// Escapes a value for COPY's text format; nullopt is \N (NULL).
void copy_field(std::string& out, const std::optional<std::string>& value);
// A PostgreSQL array literal of text values: {"a","b"}.
std::string array_literal(const std::vector<std::string>& values);

// Whether PostgreSQL answers at `conninfo` (PQping), within 5 s whatever the
// connection string says, and how to say it ("PostgreSQL answers", ...).
std::pair<bool, std::string> ping(const std::string& conninfo);

}  // namespace a3::projections::audit
