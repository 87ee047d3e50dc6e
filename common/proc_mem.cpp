#include "common/proc_mem.hpp"

#include <fstream>
#include <sstream>
#include <vector>

namespace ne {

ProcMem read_proc_mem(const std::string& paths) {
  std::vector<std::string> want;
  std::stringstream ss(paths);
  std::string item;
  while (std::getline(ss, item, ':'))
    if (!item.empty()) want.push_back(item);
  ProcMem m;
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    // Mapping header lines start with a hex address range "xxxx-yyyy perms ...".
    if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
        line.find(':') > line.find(' ')) {
      in_file = false;
      for (auto& w : want)
        if (line.size() >= w.size() && line.compare(line.size() - w.size(), w.size(), w) == 0) in_file = true;
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    size_t kb = std::strtoull(line.c_str() + colon + 1, nullptr, 10) * 1024;
    if (key == "Rss") { m.rss += kb; if (in_file) m.file_rss += kb; }
    else if (key == "Pss") { m.pss += kb; if (in_file) m.file_pss += kb; }
    else if (key == "Size") { if (in_file) m.file_size += kb; }
    else if (key == "Private_Clean" || key == "Private_Dirty") m.private_bytes += kb;
  }
  return m;
}

}  // namespace ne
