#include "core/memory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace microgpt {

double available_memory_bytes() {
  double available = 0;
  if (std::ifstream meminfo("/proc/meminfo"); meminfo) {
    std::string key;
    double kb;
    std::string unit;
    while (meminfo >> key >> kb >> unit) {
      if (key == "MemAvailable:") available = kb * 1024;
    }
  }
  if (available <= 0) {
    available = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  }
  if (std::ifstream limit("/sys/fs/cgroup/memory.max"); limit) {
    std::string value;
    if (limit >> value && value != "max") available = std::min(available, std::stod(value));
  }
  return available;
}

std::string human_count(double n) {
  char buf[48];
  if (n < 1e6) {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  } else if (n < 1e9) {
    std::snprintf(buf, sizeof buf, "%.1f million", n / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f billion", n / 1e9);
  }
  return buf;
}

std::string human_bytes(double b) {
  char buf[48];
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (b >= 1000 && u < 6) {
    b /= 1000;
    u++;
  }
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

}  // namespace microgpt
