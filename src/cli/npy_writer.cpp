#include "cli/npy_writer.h"

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace gptq::cli {

static_assert(std::endian::native == std::endian::little,
              "the .npy writer assumes a little-endian host");

NpyWriter::NpyWriter(const std::filesystem::path& path, const std::vector<int64_t>& shape)
    : path_(path) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    expected_ *= shape[i];
  }
  if (shape.size() == 1) dims += ",";  // a one-element tuple
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) fail_code(ExitCode::kIo, "cannot create {}: {}", path.string(), std::strerror(errno));
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  if (std::fwrite(magic, 1, 8, file_) != 8 || std::fwrite(&len, 2, 1, file_) != 1 ||
      std::fwrite(header.data(), 1, header.size(), file_) != header.size())
    fail_code(ExitCode::kIo, "cannot write {}: {}", path.string(), std::strerror(errno));
}

NpyWriter::~NpyWriter() {
  if (file_) std::fclose(file_);
}

void NpyWriter::write(const float* data, int64_t count) {
  if (std::fwrite(data, sizeof(float), static_cast<size_t>(count), file_) !=
      static_cast<size_t>(count))
    fail_code(ExitCode::kIo, "cannot write {}: {}", path_.string(), std::strerror(errno));
  written_ += count;
}

void NpyWriter::finish() {
  if (written_ != expected_)
    fail_code(ExitCode::kInternal, "{}: {} of {} values written", path_.string(), written_,
              expected_);
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0)
    fail_code(ExitCode::kIo, "cannot write {}: {}", path_.string(), std::strerror(errno));
}

}  // namespace gptq::cli
