#include "actors/handler.hpp"

#include "actors/clock.hpp"

namespace jobsmith {

job_context::job_context(job_id id, std::uint32_t attempt, std::string kind, std::string payload,
                         std::string handover,
                         std::shared_ptr<const std::atomic<bool>> cancelled, flush_fn flush,
                         std::chrono::milliseconds flush_interval)
    : id_(id),
      attempt_(attempt),
      kind_(std::move(kind)),
      payload_(std::move(payload)),
      handover_(std::move(handover)),
      cancelled_(std::move(cancelled)),
      flush_(std::move(flush)),
      flush_interval_(flush_interval),
      last_flush_(std::chrono::steady_clock::now()) {}

void job_context::log(log_level level, std::string text) {
  lines_.push_back(log_line{level, system_wall_now(), std::move(text)});
  maybe_flush();
}

void job_context::progress(std::int32_t percent, std::string detail) {
  if (percent >= 0) percent_ = std::min(percent, 100);
  if (!detail.empty()) detail_ = std::move(detail);
  maybe_flush();
}

void job_context::maybe_flush() {
  // Bounded rate: at most one job.progress per interval, whatever the
  // handler logs; lines in between are kept and recorded together.
  if (std::chrono::steady_clock::now() - last_flush_ >= flush_interval_) flush();
}

void job_context::flush() {
  last_flush_ = std::chrono::steady_clock::now();
  if (detail_.empty() && percent_ < 0 && lines_.empty()) return;
  if (flush_) flush_(std::move(detail_), percent_, std::move(lines_));
  detail_.clear();
  percent_ = -1;
  lines_.clear();
}

}  // namespace jobsmith
