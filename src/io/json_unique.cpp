#include "io/json_unique.h"

#include <fmt/format.h>

#include <unordered_set>

namespace gptq {

namespace {
// Thrown inside the parser callback to stop at the first duplicate.
struct StopParsing {};
struct TooDeep {};

struct Frame {
  std::string name;  // key under which this object appears in its parent
  std::unordered_set<std::string> keys;
};
}  // namespace

JsonParseResult parse_json_unique_keys(std::string_view text) {
  JsonParseResult result;
  std::vector<Frame> stack;
  std::string last_key;
  int depth = 0;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (++depth > kMaxJsonDepth) throw TooDeep{};
    } else if (event == E::object_end || event == E::array_end) {
      --depth;
    }
    if (event == E::object_start) {
      stack.push_back(Frame{last_key, {}});
    } else if (event == E::object_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (event == E::key && !stack.empty()) {
      last_key = parsed.get<std::string>();
      if (!stack.back().keys.insert(last_key).second) {
        JsonParseResult::Duplicate dup;
        for (size_t i = 1; i < stack.size(); ++i) dup.parents.push_back(stack[i].name);
        dup.key = last_key;
        result.duplicate = std::move(dup);
        throw StopParsing{};
      }
    }
    return true;
  };
  try {
    result.value = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const StopParsing&) {
    result.value = nullptr;
  } catch (const TooDeep&) {
    result.syntax_error =
        fmt::format("arrays and objects nested deeper than {} levels", kMaxJsonDepth);
    result.value = nullptr;
  } catch (const nlohmann::json::exception& e) {
    // A syntax error, or a number out of range (out_of_range.406, e.g. 1e999). Drop nlohmann's
    // "[json.exception.parse_error.101] " prefix.
    std::string_view what = e.what();
    if (const size_t end = what.find("] "); what.starts_with("[json.") && end != what.npos) {
      what.remove_prefix(end + 2);
    }
    result.syntax_error = std::string(what);
    result.value = nullptr;
  }
  return result;
}

}  // namespace gptq
