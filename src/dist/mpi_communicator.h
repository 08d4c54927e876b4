// The Communicator over Open MPI (MPI_COMM_WORLD), in the gptq CLI when built with GPTQ_MPI.
#pragma once

#include "dist/communicator.h"

namespace gptq::dist {

// Whether this process was started by mpirun/mpiexec (Open MPI or PMIx environment).
bool launched_by_mpirun();

class MpiCommunicator final : public Communicator {
 public:
  // MPI_Init; errors return codes (MPI_ERRORS_RETURN) and are thrown as gptq::Error.
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;  // MPI_Finalize
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void broadcast(Bytes& bytes, int root) override;
  std::vector<Bytes> gather(std::span<const char> mine, int root) override;
  Bytes scatter(const std::vector<Bytes>& parts, int root) override;
  std::vector<Bytes> allgather(std::span<const char> mine) override;
  void allgather_each(std::span<const char> mine,
                      const std::function<void(int, std::span<const char>)>& take) override;
  void abort(int code) override;

 private:
  void send(const char* p, uint64_t n, int to);
  void recv(char* p, uint64_t n, int from);
  int rank_ = 0, size_ = 1;
};

}  // namespace gptq::dist
