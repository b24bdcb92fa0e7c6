// Reading files an operator names (configuration, databases) without ever
// blocking on what is not a regular file: a FIFO, a device, a procfs or
// tracefs file that waits for data.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace a3 {

// `file` opened for reading (O_NONBLOCK, O_CLOEXEC), checked on the open
// descriptor to be a regular file; -1 with `why` (errno's text, or "not a
// regular file") otherwise. The caller closes it.
int open_regular_file(const std::filesystem::path& file, std::string& why);

// The contents of `file`, at most `max` bytes; nullopt with `why` if it
// cannot be read, is not a regular file, or is larger.
std::optional<std::string> read_regular_file(const std::filesystem::path& file, std::size_t max,
                                             std::string& why);

}  // namespace a3
