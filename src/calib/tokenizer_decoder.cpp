#include "calib/tokenizer_decoder.h"

#include "calib/tokenizer_bytelevel.h"
#include "calib/tokenizer_pattern.h"
#include "calib/tokenizer_utf8.h"

namespace gptq::tok {

namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Maps byte-level characters back to bytes; a token with a character outside the map is
// taken as raw bytes (e.g. an added token containing a space). The result is one string.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      const size_t mark = bytes.size();
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        size_t n = 0;
        const auto b = unicode_to_byte(utf8_decode(t, i, &n));
        if (b)
          bytes += static_cast<char>(*b);
        else
          ok = false;
        i += n;
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (!replacement_.empty() && t.compare(k, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out += ' ';
          k += replacement_.size();
        } else {
          out += t[k++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = regex_replace_all(*re_, t, content_);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// Runs of <0xNN> tokens become the UTF-8 text they spell, or one U+FFFD per byte if invalid.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (find_invalid_utf8(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (std::string& t : tokens) {
      int byte = parse_byte(t);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte(const std::string& t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (std::string& t : tokens) {
      size_t b = 0;
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0; ++k)
        b += content_.size();
      size_t e = t.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

size_t non_negative(const JsonFile& f, const json& j, std::string_view key,
                    const std::string& path) {
  const json* v = f.find(j, key);
  if (!v) return 0;
  const int64_t n = f.as_int(*v, key_path(path, key));
  if (n < 0) f.bad(key_path(path, key), "is negative");
  return static_cast<size_t>(n);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonFile& f, const json& j, const std::string& path) {
  f.as_object(j, path);
  const std::string type = f.str(j, "type", path);
  if (type == "Sequence") {
    const std::string p = key_path(path, "decoders");
    const json& arr = f.as_array(f.at(j, "decoders", path), p);
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < arr.size(); ++i)
      parts.push_back(make_decoder(f, arr[i], index_path(p, i)));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool strip_first = f.boolean(j, "add_prefix_space", path, true);
    if (auto s = f.opt_str(j, "prepend_scheme", path)) strip_first = *s != "never";
    return std::make_unique<MetaspaceDecoder>(f.opt_str(j, "replacement", path).value_or("\u2581"),
                                              strip_first);
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(
        parse_pattern(f, f.at(j, "pattern", path), key_path(path, "pattern")),
        f.str(j, "content", path));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(f.str(j, "content", path),
                                          non_negative(f, j, "start", path),
                                          non_negative(f, j, "stop", path));
  f.unsupported(key_path(path, "type"), "'" + type + "'",
                "Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip");
}

std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens) {
  std::string out;
  if (!decoder) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder->decode_chain(tokens);
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace gptq::tok
