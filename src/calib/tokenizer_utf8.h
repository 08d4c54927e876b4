// UTF-8 helpers shared by the tokenizer code: validation, code point iteration and encoding,
// and lossy conversion of decoded bytes (invalid sequences become U+FFFD, as Rust's
// String::from_utf8_lossy and Python's errors="replace" do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gptq::tok {

// Byte offset of the first invalid UTF-8 sequence in s, or npos if s is valid.
size_t find_invalid_utf8(std::string_view s);

// Length in bytes of the (valid) UTF-8 character starting at s[i].
size_t utf8_char_len(std::string_view s, size_t i);

// Decodes the (valid) UTF-8 character starting at s[i]; sets len to its byte length.
char32_t utf8_decode(std::string_view s, size_t i, size_t* len);

// Appends the UTF-8 encoding of code point cp to out.
void utf8_append(std::string& out, char32_t cp);

// Unicode White_Space (Rust's char::is_whitespace).
bool is_unicode_whitespace(char32_t cp);

// Byte length of the whitespace run at the start / end of s.
size_t leading_whitespace(std::string_view s);
size_t trailing_whitespace(std::string_view s);

// Copies bytes to a valid UTF-8 string, replacing each maximal invalid subsequence by U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Throws gptq::Error unless text is valid UTF-8 (what: who is asking, for the message).
void require_utf8(std::string_view text, std::string_view what);

}  // namespace gptq::tok
