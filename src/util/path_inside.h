// Whether a path lies inside another, component by component (both already made absolute and
// normal by the caller).
#pragma once

#include <filesystem>

namespace gptq {

// True when `a` is `b` or lies below it.
inline bool path_inside(const std::filesystem::path& a, const std::filesystem::path& b) {
  auto ai = a.begin(), bi = b.begin();
  for (; bi != b.end(); ++ai, ++bi)
    if (ai == a.end() || *ai != *bi) return false;
  return true;
}

}  // namespace gptq
