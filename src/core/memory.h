// How much memory this process may still use, and sizes as people read them. The
// refusals of models and files too large for the machine are built on these.
#pragma once

#include <string>

namespace microgpt {

// MemAvailable, or the cgroup's limit if lower (physical memory when neither is known).
double available_memory_bytes();

// "7.4 TB", "512 bytes"; "120.0 billion", "4192".
std::string human_bytes(double bytes);
std::string human_count(double n);

}  // namespace microgpt
