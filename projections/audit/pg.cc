#include "projections/audit/pg.h"

namespace a3::projections::audit {

Connection::Connection(const std::string& url) {
  conn_ = PQconnectdb(url.c_str());
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

bool Connection::ok() const {
  return conn_ && PQstatus(conn_) == CONNECTION_OK;
}

std::string Connection::error() const {
  if (!conn_) return "out of memory";
  std::string e = PQerrorMessage(conn_);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' '))
    e.pop_back();
  return e;
}

std::string Connection::literal(const std::string& s) const {
  char* q = PQescapeLiteral(conn_, s.c_str(), s.size());
  if (!q) return "''";
  std::string out(q);
  PQfreemem(q);
  return out;
}

std::optional<std::string> Connection::exec(const std::string& sql) {
  Result r(PQexec(conn_, sql.c_str()));
  const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return std::nullopt;
  return error();
}

Result Connection::query(const std::string& sql,
                         const std::vector<std::optional<std::string>>& params, std::string* err) {
  std::vector<const char*> values;
  for (const auto& p : params)
    values.push_back(p ? p->c_str() : nullptr);
  Result r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0));
  const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (err) *err = error();
    return nullptr;
  }
  return r;
}

std::optional<std::string> Connection::copy_in(const std::string& copy_sql,
                                               const std::string& data) {
  Result start(PQexec(conn_, copy_sql.c_str()));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN) return error();
  if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 ||
      PQputCopyEnd(conn_, nullptr) != 1) {
    return error();
  }
  Result end(PQgetResult(conn_));
  const bool ok = end && PQresultStatus(end.get()) == PGRES_COMMAND_OK;
  // Drain: libpq expects results to be read until NULL.
  while (Result more{PQgetResult(conn_)}) {
  }
  if (!ok) return error();
  return std::nullopt;
}

void copy_field(std::string& out, const std::optional<std::string>& value) {
  if (!value) {
    out += "\\N";
    return;
  }
  for (char c : *value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
}

std::string array_literal(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::pair<bool, std::string> ping(const std::string& conninfo) {
  const bool uri = conninfo.find("://") != std::string::npos;
  const std::string probe =
      conninfo + (uri ? (conninfo.find('?') == std::string::npos ? "?" : "&") +
                            std::string("connect_timeout=5")
                      : std::string(" connect_timeout=5"));
  switch (PQping(probe.c_str())) {
    case PQPING_OK:
      return {true, "PostgreSQL answers"};
    case PQPING_REJECT:
      return {false, "PostgreSQL refuses connections"};
    default:
      return {false, "PostgreSQL does not answer"};
  }
}

}  // namespace a3::projections::audit
