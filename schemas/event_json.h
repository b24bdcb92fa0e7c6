// Readable renderings of events for a3ctl and logs.
#pragma once

#include <string>

#include "schemas/event.h"

namespace a3::schemas {

// One JSON object. Message bodies are summarised (size and SHA-256), never
// printed; password hashes are never printed.
std::string to_json(const Event& event);

// One line for people: time, kind, account, actor and the body's fields.
std::string to_text(const Event& event);

}  // namespace a3::schemas
