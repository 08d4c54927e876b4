#include "calib/tokenizer_postproc.h"

namespace gptq::tok {

namespace {

void append_ids(const JsonFile& f, const json& ids, const std::string& path,
                std::vector<int32_t>& out) {
  f.as_array(ids, path);
  for (size_t i = 0; i < ids.size(); ++i)
    out.push_back(static_cast<int32_t>(f.as_int(ids[i], index_path(path, i))));
}

SpecialWrap parse_template(const JsonFile& f, const json& j, const std::string& path) {
  SpecialWrap w;
  const std::string single_path = key_path(path, "single");
  const json& single = f.as_array(f.at(j, "single", path), single_path);
  const std::string specials_path = key_path(path, "special_tokens");
  const json* specials = f.find(j, "special_tokens");
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string p = index_path(single_path, i);
    const json& item = f.as_object(single[i], p);
    if (f.find(item, "Sequence")) {
      seen_sequence = true;
      continue;
    }
    const json& sp = f.at(item, "SpecialToken", p);
    const std::string name = f.str(sp, "id", key_path(p, "SpecialToken"));
    if (!specials) f.bad(specials_path, "is missing");
    const std::string tp = key_path(specials_path, name);
    const json& entry = f.at(*specials, name, specials_path);
    append_ids(f, f.at(entry, "ids", tp), key_path(tp, "ids"), seen_sequence ? w.suffix : w.prefix);
  }
  if (!seen_sequence) f.bad(single_path, "has no {\"Sequence\": ...} item for the text");
  return w;
}

// ["<s>", 0] as used by RobertaProcessing / BertProcessing.
int32_t token_pair_id(const JsonFile& f, const json& j, std::string_view key,
                      const std::string& path) {
  const std::string p = key_path(path, key);
  const json& v = f.as_array(f.at(j, key, path), p);
  if (v.size() != 2) f.bad(p, "is not a [token, id] pair");
  return static_cast<int32_t>(f.as_int(v[1], index_path(p, 1)));
}

}  // namespace

SpecialWrap parse_post_processor(const JsonFile& f, const json& j, const std::string& path) {
  f.as_object(j, path);
  const std::string type = f.str(j, "type", path);
  if (type == "TemplateProcessing") return parse_template(f, j, path);
  if (type == "ByteLevel") return {};
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return {{token_pair_id(f, j, "cls", path)}, {token_pair_id(f, j, "sep", path)}};
  if (type == "Sequence") {
    const std::string p = key_path(path, "processors");
    const json& arr = f.as_array(f.at(j, "processors", path), p);
    SpecialWrap w;
    for (size_t i = 0; i < arr.size(); ++i) {
      SpecialWrap inner = parse_post_processor(f, arr[i], index_path(p, i));
      inner.prefix.insert(inner.prefix.end(), w.prefix.begin(), w.prefix.end());
      w.prefix = std::move(inner.prefix);
      w.suffix.insert(w.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
    return w;
  }
  f.unsupported(key_path(path, "type"), "'" + type + "'",
                "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence");
}

}  // namespace gptq::tok
