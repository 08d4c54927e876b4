#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <cstdlib>

#include "util/error.h"

namespace gptq::dist {

namespace {

// Messages go in pieces of at most 1 GiB (MPI counts are int).
constexpr uint64_t kPiece = uint64_t{1} << 30;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail_code(ExitCode::kIo,
            "MPI {} failed: {} (a process of the run ended or the network failed; the finished "
            "blocks are kept: continue with --resume)",
            what, std::string(msg, static_cast<size_t>(len)));
}

}  // namespace

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  check(MPI_Init(argc, argv), "MPI_Init");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  MPI_Finalize();
}

void MpiCommunicator::send(const char* p, uint64_t n, int to) {
  for (uint64_t off = 0; off < n; off += kPiece)
    check(MPI_Send(p + off, static_cast<int>(std::min(kPiece, n - off)), MPI_BYTE, to, 0,
                   MPI_COMM_WORLD),
          "MPI_Send");
  sent_ += n;
}

void MpiCommunicator::recv(char* p, uint64_t n, int from) {
  for (uint64_t off = 0; off < n; off += kPiece)
    check(MPI_Recv(p + off, static_cast<int>(std::min(kPiece, n - off)), MPI_BYTE, from, 0,
                   MPI_COMM_WORLD, MPI_STATUS_IGNORE),
          "MPI_Recv");
  received_ += n;
}

void MpiCommunicator::broadcast(Bytes& bytes, int root) {
  uint64_t n = bytes.size();
  check(MPI_Bcast(&n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  if (rank_ != root) bytes.resize(n);
  for (uint64_t off = 0; off < n; off += kPiece)
    check(MPI_Bcast(bytes.data() + off, static_cast<int>(std::min(kPiece, n - off)), MPI_BYTE, root,
                    MPI_COMM_WORLD),
          "MPI_Bcast");
  if (rank_ == root)
    sent_ += n * static_cast<uint64_t>(size_ - 1);
  else
    received_ += n;
}

std::vector<Bytes> MpiCommunicator::gather(std::span<const char> mine, int root) {
  std::vector<Bytes> all;
  if (rank_ != root) {
    const uint64_t n = mine.size();
    send(reinterpret_cast<const char*>(&n), sizeof n, root);
    send(mine.data(), n, root);
    return all;
  }
  all.resize(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    if (r == root) {
      all[r].assign(mine.begin(), mine.end());
      continue;
    }
    uint64_t n = 0;
    recv(reinterpret_cast<char*>(&n), sizeof n, r);
    all[r].resize(n);
    recv(all[r].data(), n, r);
  }
  return all;
}

Bytes MpiCommunicator::scatter(const std::vector<Bytes>& parts, int root) {
  if (rank_ == root) {
    if (parts.size() != static_cast<size_t>(size_))
      fail_code(ExitCode::kInternal, "scatter: {} parts for {} processes", parts.size(), size_);
    for (int r = 0; r < size_; ++r) {
      if (r == root) continue;
      const uint64_t n = parts[r].size();
      send(reinterpret_cast<const char*>(&n), sizeof n, r);
      send(parts[r].data(), n, r);
    }
    return parts[root];
  }
  uint64_t n = 0;
  recv(reinterpret_cast<char*>(&n), sizeof n, root);
  Bytes b(n);
  recv(b.data(), n, root);
  return b;
}

std::vector<Bytes> MpiCommunicator::allgather(std::span<const char> mine) {
  std::vector<Bytes> all(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) all[r].assign(mine.begin(), mine.end());
    broadcast(all[r], r);
  }
  return all;
}

void MpiCommunicator::allgather_each(std::span<const char> mine,
                                     const std::function<void(int, std::span<const char>)>& take) {
  for (int r = 0; r < size_; ++r) {
    Bytes b;
    if (r == rank_) b.assign(mine.begin(), mine.end());
    broadcast(b, r);
    take(r, b);
  }
}

void MpiCommunicator::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace gptq::dist
