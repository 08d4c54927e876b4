#include "infer/text_stream.h"

#include "calib/tokenizer.h"

namespace gptq {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of `s` without its trailing run of U+FFFD.
size_t stable_length(const std::string& s) {
  size_t n = s.size();
  while (n >= kReplacement.size() &&
         std::string_view(s).substr(n - kReplacement.size()) == kReplacement)
    n -= kReplacement.size();
  return n;
}

}  // namespace

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<int32_t> prompt)
    : tok_(tokenizer), ids_(std::move(prompt)) {
  prompt_size_ = ids_.size();
  prompt_text_ = tok_.decode(ids_);
}

std::string TextStream::continuation() const {
  std::string all = tok_.decode(ids_);
  if (all.starts_with(prompt_text_)) return all.substr(prompt_text_.size());
  return tok_.decode(
      std::vector<int32_t>(ids_.begin() + static_cast<std::ptrdiff_t>(prompt_size_), ids_.end()));
}

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  return take(continuation(), false);
}

std::string TextStream::finish() {
  return take(continuation(), true);
}

std::string TextStream::text() const {
  return continuation();
}

std::string TextStream::take(std::string decoded, bool final) {
  // Text already printed cannot be taken back: print only what extends it.
  if (!decoded.starts_with(emitted_)) return {};
  const size_t end = final ? decoded.size() : stable_length(decoded);
  if (end <= emitted_.size()) return {};
  std::string fresh = decoded.substr(emitted_.size(), end - emitted_.size());
  emitted_.append(fresh);
  return fresh;
}

}  // namespace gptq
