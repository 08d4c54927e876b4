#include "calib/tokenizer_normalizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "calib/tokenizer_pattern.h"
#include "calib/tokenizer_utf8.h"
#include "util/error.h"

namespace gptq::tok {

namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    text = regex_replace_all(*re_, text, content_);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    if (right_) text.resize(text.size() - trailing_whitespace(text));
    if (left_) text.erase(0, leading_whitespace(text));
  }

 private:
  bool left_, right_;
};

class NfcNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { check_nfc_stable(text); }
};

// Code point ranges (inclusive) whose characters are NFC_Quick_Check=Yes, have canonical
// combining class 0 and never compose with a preceding character: a string made only of them
// is already in NFC. Scripts built on combining marks (Hebrew points, Indic, Thai, ...) are
// left out rather than normalized wrongly.
constexpr std::pair<char32_t, char32_t> kNfcStable[] = {
    {0x0000, 0x02FF},   {0x0370, 0x0373},   {0x0375, 0x037D},   {0x037F, 0x0386},
    {0x0388, 0x03FF},   {0x0400, 0x0482},   {0x048A, 0x052F},   {0x0531, 0x058F},
    {0x05D0, 0x05EA},   {0x05F0, 0x05F4},   {0x0600, 0x064A},   {0x0660, 0x066F},
    {0x0671, 0x06D5},   {0x1E00, 0x1EFF},   {0x2002, 0x206F},   {0x2070, 0x209F},
    {0x20A0, 0x20CF},   {0x20E3, 0x20E3},   {0x2100, 0x2125},   {0x2127, 0x2129},
    {0x212C, 0x2328},   {0x232B, 0x2ADB},   {0x2ADD, 0x2BFF},   {0x2E00, 0x2FDF},
    {0x3000, 0x3029},   {0x3030, 0x3098},   {0x309B, 0x30FF},   {0x3100, 0x33FF},
    {0x3400, 0x4DBF},   {0x4DC0, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},
    {0xFB00, 0xFB06},   {0xFE00, 0xFE0F},   {0xFE30, 0xFE6F},   {0xFE70, 0xFEFF},
    {0xFF00, 0xFFEF},   {0x1F000, 0x1FAFF}, {0x20000, 0x2A6DF}, {0x2A700, 0x2EBEF},
    {0x30000, 0x3134F},
};

bool nfc_stable(char32_t cp) {
  auto it = std::upper_bound(std::begin(kNfcStable), std::end(kNfcStable), cp,
                             [](char32_t c, const auto& r) { return c < r.first; });
  if (it == std::begin(kNfcStable)) return false;
  --it;
  return cp <= it->second;
}

}  // namespace

void check_nfc_stable(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    const char32_t cp = utf8_decode(text, i, &n);
    if (!nfc_stable(cp))
      fail(
          "tokenizer NFC normalizer: character U+{:04X} (byte offset {}) may change under "
          "Unicode NFC, which this build does not implement (it passes text that is NFC by "
          "construction: Latin, Greek, Cyrillic, Arabic, CJK, Hangul, punctuation, emoji); "
          "remove such characters from the calibration text",
          static_cast<uint32_t>(cp), i);
    i += n;
  }
}

std::unique_ptr<Normalizer> make_normalizer(const JsonFile& f, const json& j,
                                            const std::string& path) {
  f.as_object(j, path);
  const std::string type = f.str(j, "type", path);
  if (type == "Sequence") {
    const std::string p = key_path(path, "normalizers");
    const json& arr = f.as_array(f.at(j, "normalizers", path), p);
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < arr.size(); ++i)
      parts.push_back(make_normalizer(f, arr[i], index_path(p, i)));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(f.str(j, "prepend", path));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(
        parse_pattern(f, f.at(j, "pattern", path), key_path(path, "pattern")),
        f.str(j, "content", path));
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(f.boolean(j, "strip_left", path, true),
                                             f.boolean(j, "strip_right", path, true));
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  f.unsupported(key_path(path, "type"), "'" + type + "'", "Sequence, Prepend, Replace, Strip, NFC");
}

}  // namespace gptq::tok
