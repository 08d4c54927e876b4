// Processes of a distributed run (data-parallel calibration, README "Several machines (MPI)").
// The pipeline talks to a Communicator: LocalCommunicator is the single process (every operation
// is a copy), MpiCommunicator (mpi_communicator.h, built with GPTQ_MPI into the gptq CLI only) runs
// over Open MPI. The quantize pipeline uses world(), which is the single process unless the CLI was
// started by mpirun and installed an MPI communicator with set_world().
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gptq::dist {

using Bytes = std::vector<char>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The bytes of `root` on every rank (`bytes` is resized on the others).
  virtual void broadcast(Bytes& bytes, int root) = 0;
  // Every rank's bytes on `root`, in rank order (empty on the other ranks).
  virtual std::vector<Bytes> gather(std::span<const char> mine, int root) = 0;
  // parts[r] (given on `root`) to rank r; returns this rank's part.
  virtual Bytes scatter(const std::vector<Bytes>& parts, int root) = 0;
  // Every rank's bytes on every rank, in rank order.
  virtual std::vector<Bytes> allgather(std::span<const char> mine) = 0;
  // The same, one rank's bytes at a time: `take(r, bytes)` for r = 0, 1, ... (only one held at
  // once).
  virtual void allgather_each(
      std::span<const char> mine,
      const std::function<void(int rank, std::span<const char> bytes)>& take) = 0;
  // Ends every process of the run with this exit code (MPI_Abort); the single process returns.
  virtual void abort(int code) = 0;

  // Payload bytes this process sent and received so far (for the scaling figures).
  uint64_t bytes_sent() const { return sent_; }
  uint64_t bytes_received() const { return received_; }

 protected:
  uint64_t sent_ = 0, received_ = 0;
};

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void broadcast(Bytes&, int) override {}
  std::vector<Bytes> gather(std::span<const char> mine, int) override {
    return {Bytes(mine.begin(), mine.end())};
  }
  Bytes scatter(const std::vector<Bytes>& parts, int) override { return parts.at(0); }
  std::vector<Bytes> allgather(std::span<const char> mine) override {
    return {Bytes(mine.begin(), mine.end())};
  }
  void allgather_each(std::span<const char> mine,
                      const std::function<void(int, std::span<const char>)>& take) override {
    take(0, mine);
  }
  void abort(int) override {}
};

// The communicator of this process (a LocalCommunicator unless set_world installed another; the
// caller keeps it alive until the run ends).
Communicator& world();
void set_world(Communicator* c);

// [first, last) of `n` items (whole chunks of `chunk` items; chunk <= 0: one chunk of all) owned
// by `rank` of `size`: contiguous ranges of whole chunks, the first ranks taking the larger shares
// (rank r: chunks [ceil(C r / size), ceil(C (r+1) / size))).
struct Range {
  int64_t first = 0, last = 0;
};
Range chunk_range(int64_t n, int64_t chunk, int rank, int size);

// Serialisation helpers for the messages (plain little-endian bytes of trivially copyable values).
class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    const char* p = reinterpret_cast<const char*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof v);
  }
  template <typename T>
  void put_array(const T* p, size_t n) {
    put(static_cast<uint64_t>(n));
    const char* c = reinterpret_cast<const char*>(p);
    bytes.insert(bytes.end(), c, c + n * sizeof(T));
  }
  void put_string(const std::string_view s) { put_array(s.data(), s.size()); }
  Bytes bytes;
};

class Reader {
 public:
  explicit Reader(std::span<const char> b) : b_(b) {}
  template <typename T>
  T get() {
    T v;
    need(sizeof v);
    std::copy_n(b_.data() + pos_, sizeof v, reinterpret_cast<char*>(&v));
    pos_ += sizeof v;
    return v;
  }
  template <typename T>
  std::vector<T> get_array() {
    const uint64_t n = get<uint64_t>();
    need(n * sizeof(T));
    std::vector<T> v(n);
    std::copy_n(b_.data() + pos_, n * sizeof(T), reinterpret_cast<char*>(v.data()));
    pos_ += n * sizeof(T);
    return v;
  }
  std::string get_string() {
    const std::vector<char> c = get_array<char>();
    return std::string(c.begin(), c.end());
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  void need(uint64_t n) const;
  std::span<const char> b_;
  size_t pos_ = 0;
};

}  // namespace gptq::dist
