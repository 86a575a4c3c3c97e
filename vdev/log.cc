#include "vdev/log.h"

#include <time.h>

#include <cstdio>
#include <string>

namespace vrdma::vdev {

namespace {
LogLevel g_level = LogLevel::kInfo;
}

void SetLogLevel(LogLevel level) { g_level = level; }

std::string LogQuote(std::string_view value) {
  if (value.find_first_of(" \"=") == std::string_view::npos && !value.empty()) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void Log(LogLevel level, std::string_view event, std::string_view fields) {
  if (level < g_level) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char when[40];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &t);
  std::fprintf(stderr, "ts=%s.%03ldZ level=%s event=%.*s%s%.*s\n", when, ts.tv_nsec / 1000000,
               kNames[static_cast<int>(level)], static_cast<int>(event.size()), event.data(),
               fields.empty() ? "" : " ", static_cast<int>(fields.size()), fields.data());
}

}  // namespace vrdma::vdev
