// pv-dev-broker: librdkafka's mock cluster as a standalone broker for development and tests.
// Data lives in memory only; this is not Kafka and never runs in production. See dev_broker.hpp.
#include "dev_broker.hpp"

int main(int argc, char** argv) {
  return pv::dev_broker::Main(argc, argv);
}
