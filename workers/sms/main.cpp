// sms-worker: see pv/workers/worker_main.hpp and docs/configuration-workers.md.
#include "pv/workers/worker_main.hpp"

int main(int argc, char** argv) {
  return pv::workers::RunWorkerMain(pv::Channel::kSms, argc, argv);
}
