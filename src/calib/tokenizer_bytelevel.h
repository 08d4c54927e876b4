// GPT-2's reversible byte <-> unicode map used by byte-level BPE (ByteLevel pre-tokenizer and
// decoder): printable bytes map to themselves, the rest to U+0100 and up in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gptq::tok {

// The map itself: the UTF-8 text of the character standing for byte b.
const std::array<std::string, 256>& byte_to_unicode();

// Appends the byte-level form of raw bytes to out (each byte becomes its stand-in character).
void bytes_to_unicode_text(std::string_view bytes, std::string& out);

// The byte a stand-in code point encodes, or nullopt if cp is not one of them.
std::optional<uint8_t> unicode_to_byte(char32_t cp);

}  // namespace gptq::tok
