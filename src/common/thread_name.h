// Names the calling thread (Linux: 15 characters at most), so `top -H`, `perf --sort comm`
// and debuggers show what each of agentd's threads is for.
#pragma once

#include <pthread.h>

namespace agentd {

inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace agentd
