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

// The file: "timeline 2", "at_ms 1764650000000", "branched_at 0:1234 1:99".
Timeline read_timeline(const fs::path& data_dir) {
  Timeline t;
  const fs::path file = data_dir / "timeline";
  std::ifstream in(file);
  if (!in) return t;
  std::string line;
  auto bad = [&] {
    return std::runtime_error(fmt::format("{}: not a timeline file", file.string()));
  };
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key == "timeline") {
      if (!(words >> t.id) || t.id < 1) throw bad();
    } else if (key == "at_ms") {
      if (!(words >> t.at_ms)) throw bad();
    } else if (key == "branched_at") {
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
    } else if (!key.empty()) {
      throw bad();
    }
  }
  return t;
}

void write_timeline(const fs::path& data_dir, const Timeline& t) {
  std::string text = fmt::format("timeline {}\nat_ms {}\nbranched_at", t.id, t.at_ms);
  for (const auto& [p, o] : t.branched_at)
    text += fmt::format(" {}:{}", p, o);
  text += "\n";
  const fs::path tmp = data_dir / "timeline.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", tmp.string(), std::strerror(errno)));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("{}: cannot write it", tmp.string()));
  fs::rename(tmp, data_dir / "timeline");
  if (const int dir = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace a3::projections
