// Shared helpers of the libFuzzer harnesses: a crash with a one-line reason when an invariant
// breaks (libFuzzer then saves the input as crash-<sha1>).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "invariant broken (%s:%d): %s\n", __FILE__, __LINE__, \
                   (what));                                                     \
      std::abort();                                                             \
    }                                                                           \
  } while (0)
