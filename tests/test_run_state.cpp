// The pieces a resumable run relies on, one at a time: content hashes, the OUT.partial owner lock,
// RunStaging's refusals (never using or deleting what gptq did not make), the writer's checksums
// of what it wrote and their check on resume, and the registry of mapped files used to name a
// file in a SIGBUS. The CLI-level behaviour is in tests/test_cli.cpp's table and
// tests/e2e/signals_and_outputs.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "io/mapped_regions.h"
#include "io/safetensors_writer.h"
#include "pipeline/run_staging.h"
#include "pipeline/run_state.h"
#include "support/fixtures.h"
#include "util/atomic_file.h"
#include "util/content_hash.h"
#include "util/error.h"
#include "util/file_lock.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_model;
using ::gptq::testing::scratch_dir;

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ContentHash, Xxh3OfBytesAndFiles) {
  EXPECT_EQ(content_hash("", 0), "2d06800538d394c2");  // XXH3_64bits of the empty input
  const fs::path dir = scratch_dir("hash");
  const std::string bytes(3 << 20, 'x');  // three 1 MiB chunks
  write_text(dir / "f", bytes);
  uint64_t size = 0;
  EXPECT_EQ(content_hash_of_file(dir / "f", &size), content_hash(bytes.data(), bytes.size()));
  EXPECT_EQ(size, bytes.size());
}

TEST(FileLock, SecondHolderIsToldThePid) {
  const fs::path dir = scratch_dir("lock");
  const FileLock held = FileLock::create(dir / "owner");
  long holder = 0;
  EXPECT_FALSE(FileLock::try_lock(dir / "owner", &holder).has_value());
  EXPECT_EQ(holder, static_cast<long>(::getpid()));
}

TEST(RunStaging, NeverUsesOrDeletesWhatItDidNotMake) {
  const fs::path dir = scratch_dir("staging");
  const fs::path model = fixture_model("tiny-llama");
  // A directory someone else made: refused with and without --resume, left as it was.
  fs::create_directories(dir / "a.partial");
  write_text(dir / "a.partial" / "mine.txt", "precious");
  for (bool resume : {false, true})
    EXPECT_NE(error_of([&] {
                RunStaging(model, dir / "a", resume, nullptr);
              }).find("not made by gptq quantize"),
              std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "a.partial" / "mine.txt"));
  // A regular file.
  write_text(dir / "b.partial", "precious");
  EXPECT_NE(error_of([&] {
              RunStaging(model, dir / "b", true, nullptr);
            }).find("not a directory made by gptq"),
            std::string::npos);
  EXPECT_TRUE(fs::is_regular_file(dir / "b.partial"));
}

TEST(RunStaging, BusyWhileAnotherRunHoldsIt) {
  const fs::path dir = scratch_dir("busy");
  const RunStaging first(fixture_model("tiny-llama"), dir / "out", false, nullptr);
  EXPECT_TRUE(fs::is_regular_file(RunStaging::owner_file(dir / "out.partial")));
  const std::string err =
      error_of([&] { RunStaging(fixture_model("tiny-llama"), dir / "out", true, nullptr); });
  EXPECT_NE(err.find("in use by another run (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << err;
}

TEST(RunStaging, ResumeWithoutStateStartsOverInItsOwnDirectory) {
  const fs::path dir = scratch_dir("over");
  { RunStaging first(fixture_model("tiny-llama"), dir / "out", false, nullptr); }  // lock released
  write_text(dir / "out.partial" / "model.safetensors.partial", "half");
  std::vector<std::string> lines;
  const RunStaging again(fixture_model("tiny-llama"), dir / "out", true,
                         [&](const std::string& l) { lines.push_back(l); });
  EXPECT_FALSE(again.resuming());
  EXPECT_FALSE(fs::exists(dir / "out.partial" / "model.safetensors.partial"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("starting over"), std::string::npos);
}

// Killed between creating OUT.partial and putting its marker in place: nothing in it to lose, so
// it is taken as gptq's (never left refused forever).
TEST(RunStaging, AdoptsADirectoryStoppedBeforeItsMarker) {
  const fs::path dir = scratch_dir("unmarked");
  fs::create_directories(dir / "out.partial" / ".gptq-run");
  write_text(dir / "out.partial" / ".gptq-run" / "owner.tmp.123", "123\n");
  const RunStaging again(fixture_model("tiny-llama"), dir / "out", true, nullptr);
  EXPECT_FALSE(again.resuming());
  EXPECT_TRUE(fs::is_regular_file(RunStaging::owner_file(dir / "out.partial")));
  EXPECT_FALSE(fs::exists(dir / "out.partial" / ".gptq-run" / "owner.tmp.123"));
}

TEST(RunStaging, DiscardRemovesTheParentsItCreated) {
  const fs::path dir = scratch_dir("parents");
  RunStaging s(fixture_model("tiny-llama"), dir / "x" / "y" / "out", false, nullptr);
  EXPECT_TRUE(fs::is_directory(dir / "x" / "y" / "out.partial"));
  s.discard();
  EXPECT_FALSE(fs::exists(dir / "x"));
  EXPECT_TRUE(fs::exists(dir));
}

TEST(RunStaging, RefusesAnOutputThatIsASymlink) {
  const fs::path dir = scratch_dir("link");
  fs::create_symlink(dir / "nowhere", dir / "out");
  EXPECT_NE(error_of([&] {
              RunStaging(fixture_model("tiny-llama"), dir / "out", false, nullptr);
            }).find("is a symbolic link"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out.partial"));
}

TEST(SafetensorsWriter, ResumedTensorsAreCheckedAgainstTheirChecksums) {
  const fs::path dir = scratch_dir("adopt");
  const std::vector<TensorSpec> specs{{"a", DType::F32, {4}}, {"b", DType::F32, {2, 2}}};
  const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  SafetensorsWriter::Options o;
  o.keep_partial = true;
  std::map<std::string, std::string> sums;
  {
    SafetensorsWriter w(dir, specs, o);
    w.write("a", a, sizeof a);
    w.write("b", b, 8);  // in pieces: the checksum is read back
    w.write("b", b + 2, 8, 8);
    w.sync();
    sums = w.checksums();
  }
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums.at("a"), content_hash(a, sizeof a));
  EXPECT_EQ(sums.at("b"), content_hash(b, sizeof b));
  o.resume = true;
  {
    SafetensorsWriter w(dir, specs, o);
    w.adopt_written("a", sums.at("a"));
    w.adopt_written("b", sums.at("b"));
    w.finish();
  }
  // A modified byte, then a truncated file.
  const fs::path partial = dir / "model.safetensors.partial";
  fs::rename(dir / "model.safetensors", partial);
  {
    std::fstream f(partial, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x55');
  }
  {
    SafetensorsWriter w(dir, specs, o);
    w.adopt_written("a", sums.at("a"));
    const std::string err = error_of([&] { w.adopt_written("b", sums.at("b")); });
    EXPECT_NE(err.find("tensor 'b'"), std::string::npos) << err;
    EXPECT_NE(err.find("not what the interrupted run wrote"), std::string::npos) << err;
  }
  fs::resize_file(partial, fs::file_size(partial) - 8);
  {
    SafetensorsWriter w(dir, specs, o);
    const std::string err = error_of([&] { w.adopt_written("b", sums.at("b")); });
    EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  }
}

// A block's activations are written one sequence per task at their offsets; what comes back is
// what went in, sequence by sequence, and the file is exactly header + values.
TEST(RunState, ActivationsRoundTripThroughTheirFile) {
  const fs::path dir = scratch_dir("acts_roundtrip");
  Activations a;
  a.hidden = 3;
  for (int64_t s = 0; s < 9; ++s) {  // lengths 1..9 tokens, distinct values
    std::vector<float> v(static_cast<size_t>((s + 1) * a.hidden));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<float>(s) * 100.0f + static_cast<float>(i) * 0.5f;
    a.seqs.push_back(std::move(v));
  }
  save_activations(dir, a, 4);
  std::vector<int64_t> tokens;
  for (int64_t s = 0; s < 9; ++s) tokens.push_back(s + 1);
  const Activations b = load_activations(dir, 4, 3, tokens);
  ASSERT_EQ(b.seqs.size(), a.seqs.size());
  for (size_t s = 0; s < a.seqs.size(); ++s) EXPECT_EQ(b.seqs[s], a.seqs[s]) << "sequence " << s;
  // 8 magic + 8 hidden + 8 count + 9 lengths, then 45 tokens x 3 floats.
  uintmax_t file_bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().starts_with("acts")) file_bytes = fs::file_size(e.path());
  EXPECT_EQ(file_bytes, 8u * 12 + 45u * 3 * 4);
}

// A write abandoned after a failed piece leaves neither the file nor its temporary behind (and
// an older file of that name as it was); pieces may come in any order; nothing is visible before
// commit().
TEST(AtomicFile, AnAbandonedWriteLeavesNoFile) {
  const fs::path dir = scratch_dir("atomic_pieces");
  const fs::path p = dir / "f.bin";
  const std::string err = error_of([&] {
    AtomicFileWrite f(p);
    f.write_at(4, "abcd", 4);
    fail_code(ExitCode::kIo, "piece 2 of {} failed", p.string());
  });
  EXPECT_NE(err.find("f.bin"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(dir / "f.bin.tmp"));
  auto read = [&] {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  {
    AtomicFileWrite f(p);
    f.write_at(4, "efgh", 4);  // out of order: the hole before it is filled after
    f.write_at(0, "abcd", 4);
    EXPECT_FALSE(fs::exists(p));
    f.commit();
  }
  EXPECT_EQ(read(), "abcdefgh");
  EXPECT_FALSE(fs::exists(dir / "f.bin.tmp"));
  {
    AtomicFileWrite f(p);  // never committed: the old content stays
    f.write_at(0, "1234", 4);
  }
  EXPECT_EQ(read(), "abcdefgh");
  EXPECT_FALSE(fs::exists(dir / "f.bin.tmp"));
}

// Sequences written in any order, each once, then committed: the same file as save_activations.
TEST(RunState, ActivationsWrittenAsTheyComeLoadBack) {
  const fs::path dir = scratch_dir("acts_as_they_come");
  const std::vector<int64_t> sizes = {6, 3, 9};  // hidden 3: 2, 1 and 3 tokens
  std::vector<std::vector<float>> seqs;
  for (size_t s = 0; s < sizes.size(); ++s) {
    seqs.emplace_back();
    for (int64_t i = 0; i < sizes[s]; ++i) seqs.back().push_back(static_cast<float>(s * 100 + i));
  }
  {
    ActivationFileWrite f(dir, 3, sizes, 2);
    f.write_sequence(2, seqs[2].data());
    f.write_sequence(0, seqs[0].data());
    f.write_sequence(1, seqs[1].data());
    f.commit();
  }
  const Activations a = load_activations(dir, 2, 3, {2, 1, 3});
  ASSERT_EQ(a.seqs.size(), 3u);
  for (size_t s = 0; s < 3; ++s) EXPECT_EQ(a.seqs[s], seqs[s]) << "sequence " << s;
}

TEST(MappedRegions, NamesTheFileHoldingAnAddress) {
  static const char block[64] = {};
  register_mapping(block, sizeof block, "/models/x.safetensors");
  ASSERT_NE(mapped_file_at(block + 10), nullptr);
  EXPECT_STREQ(mapped_file_at(block + 63), "/models/x.safetensors");
  EXPECT_EQ(mapped_file_at(block + 64), nullptr);
  unregister_mapping(block);
  EXPECT_EQ(mapped_file_at(block + 10), nullptr);
}

}  // namespace
}  // namespace gptq
