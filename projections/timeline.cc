#include "projections/timeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace a3::projections {

namespace fs = std::filesystem;

// A line: "timeline 2 at_ms 1764650000000 branched_at 0:1234 1:99".
std::vector<Timeline> read_timelines(const fs::path& file) {
  std::vector<Timeline> out;
  std::ifstream in(file);
  if (!in) return out;
  auto bad = [&] {
    return std::runtime_error(fmt::format("{}: not a timeline history", file.string()));
  };
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string key, at, branched;
    Timeline t;
    if (!(words >> key >> t.id >> at >> t.at_ms >> branched) || key != "timeline" ||
        at != "at_ms" || branched != "branched_at" || t.id < 2)
      throw bad();
    if (!out.empty() ? t.id <= out.back().id : false) throw bad();
    std::string po;
    while (words >> po) {
      const auto colon = po.find(':');
      if (colon == std::string::npos) throw bad();
      try {
        t.branched_at[std::stoi(po.substr(0, colon))] = std::stoll(po.substr(colon + 1));
      } catch (const std::exception&) {
        throw bad();
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

Timeline current_timeline(const std::vector<Timeline>& history) {
  return history.empty() ? Timeline{} : history.back();
}

void write_timelines(const fs::path& file, const std::vector<Timeline>& history) {
  std::string text;
  for (const auto& t : history) {
    text += fmt::format("timeline {} at_ms {} branched_at", t.id, t.at_ms);
    for (const auto& [p, o] : t.branched_at)
      text += fmt::format(" {}:{}", p, o);
    text += "\n";
  }
  const fs::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", tmp.string(), std::strerror(errno)));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("{}: cannot write it", tmp.string()));
  fs::rename(tmp, file);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

}  // namespace a3::projections
