// Structured logs of the daemon: one line per event, key=value pairs after a timestamp
// and a level, on stderr (journald and `vrdmad 2>file` both keep them).
#pragma once

#include <string_view>

#include "absl/strings/str_cat.h"

namespace vrdma::vdev {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void SetLogLevel(LogLevel level);
// `fields` is "key=value key=value"; values with spaces are quoted by the caller
// (LogQuote).
void Log(LogLevel level, std::string_view event, std::string_view fields = {});
std::string LogQuote(std::string_view value);

}  // namespace vrdma::vdev
