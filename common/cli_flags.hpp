// Command-line parsing for the tools in bin/, compile/ and tools/ (gflags), with a --help that
// lists only the tool's own flags: gflags' --help prints glog's and gflags' thirty flags too.
//   --help      the usage line, then each flag defined in the tool's main file, one line each:
//               `--name=default  help`; exit 0.
//   --helpfull  every flag, as gflags prints it (glog's and gflags' included).
// Header-only (gflags is linked by the tools, not by ne_common). Use NE_PARSE_COMMAND_LINE in
// the file that defines the flags, instead of gflags::ParseCommandLineFlags.
#pragma once
#include <gflags/gflags.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace ne {

// A flag's list value split at `c`, empty items dropped ("a,,b" -> {"a", "b"}).
inline std::vector<std::string> split_flag(const std::string& s, char c) {
  std::vector<std::string> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, c))
    if (!item.empty()) r.push_back(item);
  return r;
}

// The flags defined in `file` (a __FILE__ as DEFINE_* recorded it), one line each.
inline std::string own_flags_help(const char* usage, const char* file) {
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const auto& f : all) {
    if (f.filename != file) continue;
    std::string left = "--" + f.name + "=" + (f.type == "string" ? "\"" + f.default_value + "\"" : f.default_value);
    width = std::max(width, left.size());
    rows.emplace_back(left, f.description);
  }
  std::string s = std::string("usage: ") + usage + "\n\nflags (--name=default; --helpfull lists every flag, glog's and gflags' too):\n";
  for (auto& r : rows) {
    std::string help = r.second;
    std::replace(help.begin(), help.end(), '\n', ' ');
    s += "  " + r.first + std::string(width - r.first.size() + 2, ' ') + help + "\n";
  }
  return s;
}

inline void parse_command_line(int* argc, char*** argv, const char* usage, const char* file) {
  gflags::SetUsageMessage(usage);
  gflags::ParseCommandLineNonHelpFlags(argc, argv, true);
  std::string help;
  if (gflags::GetCommandLineOption("help", &help) && help == "true") {
    std::fputs(own_flags_help(usage, file).c_str(), stdout);
    std::exit(0);
  }
  gflags::HandleCommandLineHelpFlags();  // --helpfull, --helpshort, --helpmatch, --version, ...
}

}  // namespace ne

#define NE_PARSE_COMMAND_LINE(argc, argv, usage) ne::parse_command_line(argc, argv, usage, __FILE__)
