// Memory figures of this process from /proc/self/smaps (Linux).
#pragma once
#include <cstddef>
#include <string>

namespace ne {

struct ProcMem {
  size_t rss = 0;            // whole process
  size_t pss = 0;
  size_t private_bytes = 0;  // Private_Clean + Private_Dirty, whole process
  size_t file_size = 0;      // for mappings of `path`: mapped size
  size_t file_rss = 0;       //   resident
  size_t file_pss = 0;       //   proportional share
};

// `path`: a file whose mappings are summed separately (model.bin, the packed-weight cache).
// Several paths may be given separated by ':'; all are summed into file_*.
ProcMem read_proc_mem(const std::string& path = "");

}  // namespace ne
