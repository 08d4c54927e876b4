// Incremental detokenization for streaming generated text. Tokens do not decode one by one
// (byte-level BPE and <0xNN> byte tokens split multi-byte UTF-8 characters; sentencepiece drops
// the leading space of a text's first word), so each push decodes the whole text so far, prompt
// included as context (if decode(prompt + generated) does not extend decode(prompt), the generated
// ids are decoded alone), and returns what extends the text returned before. A trailing U+FFFD (an
// incomplete character) is held back until a later token completes it or finish() is called.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {

class Tokenizer;

class TextStream {
 public:
  // `prompt`: the prompt's ids (context for decoding the continuation; not returned).
  TextStream(const Tokenizer& tokenizer, std::vector<int32_t> prompt);

  // Adds a generated id; returns the new text that is ready to print (maybe empty).
  std::string push(int32_t id);
  // The rest of the text (held back characters); call once at the end.
  std::string finish();
  // The whole continuation decoded so far (what push/finish return, concatenated, once done).
  std::string text() const;

 private:
  std::string continuation() const;
  std::string take(std::string decoded, bool final);

  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // prompt + generated
  size_t prompt_size_ = 0;
  std::string prompt_text_;  // decode(prompt)
  std::string emitted_;
};

}  // namespace gptq
