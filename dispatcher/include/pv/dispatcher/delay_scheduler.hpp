// The delay ladder's scheduler: consumes every pv.delay.<tier> topic and re-publishes each record
// to its target (header pv-target) when it is due (pv-due-at), or moves it down to a shorter tier
// when its tier's delay ran out first. See pv/delay_ladder.hpp for the ladder itself.
//
// How it waits without busy polling and without releasing early: records of one tier all wait the
// same delay, so a partition's head is its next record to release. When the head is not yet due the
// scheduler keeps it in memory and pauses that partition (nothing more is fetched from it), then
// sleeps in the consumer poll until the earliest held head is due. The head's offset is stored only
// after its re-publication was acknowledged, so a held record survives a restart: it is read again.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pv/delay_ladder.hpp"
#include "pv/kafka.hpp"

namespace pv::dispatcher {

struct LadderStep {
  enum class Kind {
    kWait,      // not yet: hold until release_at
    kToTarget,  // due: re-publish to the target topic
    kHop,       // the tier's delay ran out before the due time: into the tier ChooseTier picks now
  };
  Kind kind = Kind::kWait;
  std::chrono::system_clock::time_point release_at{};
};

// The step for a record held in `tier` since `produced_at` and due at `due`, at time `now`.
LadderStep DecideLadderStep(const ladder::Tier& tier, std::chrono::system_clock::time_point produced_at,
                            std::chrono::system_clock::time_point due,
                            std::chrono::system_clock::time_point now);

}  // namespace pv::dispatcher
