// The queue view's rows by job id (projections/queue_view.hpp).
//
// Job ids are dense (the scheduler counts them up), so rows live in blocks
// of consecutive ids, each block one 4 MiB mapping advised to use
// transparent huge pages (filling a block then takes two page faults, not a
// thousand). Rows are built in id order as ids come, so memory is touched
// only up to the highest id. A block the view no longer needs is released
// whole: the few
// rows it still holds ("stragglers") move to a map and its memory goes back
// to the system at once. Ids far beyond the blocks also live in a map, so a
// stray large id cannot allocate every block up to it.
//
// Not thread-safe, except slot() between calls that change the blocks
// (snapshot decoding fills reserved blocks on several threads).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../events/event.hpp"

namespace jobsmith {

/// Row: default-constructible, movable, with a `job_id id` member that is 0
/// for an empty row (no job.submitted seen for the id).
template <class Row>
class basic_row_store {
 public:
  static constexpr std::size_t block_bytes = std::size_t{4} << 20;
  static constexpr job_id block_rows = block_bytes / sizeof(Row);
  /// get() puts ids further than this past the last block in the map.
  static constexpr job_id dense_slack = 1'000'000;

  basic_row_store() = default;
  basic_row_store(const basic_row_store& other) { *this = other; }
  basic_row_store(basic_row_store&& other) noexcept { swap(other); }
  basic_row_store& operator=(const basic_row_store& other);
  basic_row_store& operator=(basic_row_store&& other) noexcept {
    basic_row_store tmp;
    swap(other);
    other.swap(tmp);
    return *this;
  }
  ~basic_row_store() { clear(); }

  /// The stored row of `id` (it may be empty), or nullptr.
  Row* find(job_id id);
  const Row* find(job_id id) const { return const_cast<basic_row_store*>(this)->find(id); }
  /// The row of `id`, created empty if none is stored. An id in a released
  /// block gets a row in the map; so does an id past `extend_limit`
  /// (default: dense_slack past the last block) unless a block holds it.
  Row& get(job_id id) { return get(id, built_ + dense_slack); }
  Row& get(job_id id, job_id extend_limit);
  /// Whether `id` lies in a released block and no row of it is stored:
  /// its row was let go (or it never had a job).
  bool released(job_id id) const;
  /// The highest id get() was called with (or max_id(id) raised it to).
  job_id max_id() const { return max_id_; }
  void max_id(job_id id) { max_id_ = std::max(max_id_, id); }

  /// Calls fn(row) for every stored row that has a job, with an id above
  /// `after`, in id order, until fn returns false.
  template <class Fn>
  void visit(job_id after, Fn&& fn) const;
  /// Calls fn(row) for every stored row that has a job, in no set order.
  template <class Fn>
  void for_each(Fn&& fn);

  /// Releases every full block (all its ids at or below max_id()) in
  /// which `done` holds for all but a quarter of the rows with a job at
  /// most: those rows are let go, after on_release(row) for each, and the
  /// others move to the map. Rows in the maps for which `done` holds are
  /// let go too. Returns how many rows with a job were let go.
  template <class Done, class OnRelease>
  std::size_t release(Done&& done, OnRelease&& on_release);

  /// Rows built in the blocks held, and rows in the maps: what the rows
  /// cost in memory.
  std::size_t rows_held() const;

  // -- snapshot support -------------------------------------------------------
  /// Released blocks as ranges [first, last] of block numbers (block b
  /// holds ids 1 + b * block_rows to (b + 1) * block_rows), rising.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> released_ranges() const;
  /// Marks the ranges released. Only on an empty store, ranges rising and
  /// apart; the caller bounds them (block numbers are not checked).
  void restore_released(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges);
  /// Builds the rows of every id up to `id` (allocating their blocks).
  void reserve_to(job_id id);
  /// The slot of `id` in an allocated block, or nullptr; never allocates.
  Row* slot(job_id id);
  /// The first id of the first block the store keeps (1 + first block * block_rows).
  job_id first_id() const { return first_block_ * block_rows + 1; }

 private:
  static std::uint64_t block_of(job_id id) { return (id - 1) / block_rows; }
  // One past the last id the blocks cover.
  job_id end_id() const { return (first_block_ + blocks_.size()) * block_rows + 1; }
  // Rows built in block i (all but the last are whole).
  job_id built_in(std::size_t i) const {
    const job_id base = (first_block_ + i) * block_rows + 1;
    return built_ <= base ? 0 : std::min<job_id>(block_rows, built_ - base);
  }
  static Row* allocate_block();  // raw memory: rows are built by extend_to
  static void free_block(Row* block, job_id built) noexcept;
  void clear() noexcept;
  void swap(basic_row_store& other) noexcept {
    std::swap(first_block_, other.first_block_);
    blocks_.swap(other.blocks_);
    stragglers_.swap(other.stragglers_);
    far_.swap(other.far_);
    std::swap(max_id_, other.max_id_);
    std::swap(built_, other.built_);
  }
  // Builds the rows up to `id` (allocating blocks), moving rows of the far
  // map into them.
  void extend_to(job_id id);

  std::uint64_t first_block_ = 0;  // every block before it is released
  std::deque<Row*> blocks_;        // block first_block_ + i; nullptr = released
  job_id built_ = 1;               // rows of ids below it are built (or released)
  std::unordered_map<job_id, Row> stragglers_;  // ids below built_, in released blocks
  std::unordered_map<job_id, Row> far_;         // ids at or past built_
  job_id max_id_ = 0;
};

// -- templates ----------------------------------------------------------------

template <class Row>
template <class Fn>
void basic_row_store<Row>::visit(job_id after, Fn&& fn) const {
  // The maps in id order, merged into the walk over the blocks.
  std::vector<const Row*> loose;
  for (const auto* map : {&stragglers_, &far_})
    for (const auto& [id, r] : *map)
      if (id > after && r.id != 0) loose.push_back(&r);
  std::sort(loose.begin(), loose.end(), [](auto* a, auto* b) { return a->id < b->id; });
  auto next = loose.begin();
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const Row* block = blocks_[i];
    const job_id base = (first_block_ + i) * block_rows + 1;
    if (block == nullptr || base + block_rows - 1 <= after) continue;
    for (job_id k = after >= base ? after - base + 1 : 0, n = built_in(i); k < n; ++k) {
      const Row& r = block[k];
      if (r.id == 0) continue;
      for (; next != loose.end() && (*next)->id < r.id; ++next)
        if (!fn(**next)) return;
      if (!fn(r)) return;
    }
  }
  for (; next != loose.end(); ++next)
    if (!fn(**next)) return;
}

template <class Row>
template <class Fn>
void basic_row_store<Row>::for_each(Fn&& fn) {
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    if (Row* block = blocks_[i])
      for (job_id k = 0, n = built_in(i); k < n; ++k)
        if (block[k].id != 0) fn(block[k]);
  for (auto* map : {&stragglers_, &far_})
    for (auto& [id, r] : *map)
      if (r.id != 0) fn(r);
}

template <class Row>
template <class Done, class OnRelease>
std::size_t basic_row_store<Row>::release(Done&& done, OnRelease&& on_release) {
  std::size_t let_go = 0;
  for (auto* map : {&stragglers_, &far_}) {
    for (auto it = map->begin(); it != map->end();) {
      if (it->second.id != 0 && done(it->second)) {
        on_release(it->second);
        ++let_go;
        it = map->erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    Row* block = blocks_[i];
    const job_id base = (first_block_ + i) * block_rows + 1;
    if (block == nullptr) continue;
    // Ids still to come, or rows not built yet.
    if (base + block_rows - 1 > max_id_ || base + block_rows > built_) break;
    job_id staying = 0;
    for (job_id k = 0; k < block_rows; ++k)
      if (block[k].id != 0 && !done(block[k])) ++staying;
    if (staying * 4 > block_rows) continue;
    for (job_id k = 0; k < block_rows; ++k) {
      Row& r = block[k];
      if (r.id == 0) continue;
      if (done(r)) {
        on_release(r);
        ++let_go;
      } else {
        stragglers_.emplace(base + k, std::move(r));
      }
    }
    free_block(block, block_rows);
    blocks_[i] = nullptr;
  }
  while (!blocks_.empty() && blocks_.front() == nullptr) {
    blocks_.pop_front();
    ++first_block_;
  }
  return let_go;
}

template <class Row>
basic_row_store<Row>& basic_row_store<Row>::operator=(const basic_row_store& other) {
  if (this == &other) return *this;
  basic_row_store copy;
  copy.first_block_ = other.first_block_;
  copy.built_ = other.built_;
  for (std::size_t i = 0; i < other.blocks_.size(); ++i) {
    Row* mine = nullptr;
    if (const Row* block = other.blocks_[i]) {
      mine = allocate_block();
      std::uninitialized_copy_n(block, other.built_in(i), mine);
    }
    copy.blocks_.push_back(mine);
  }
  copy.stragglers_ = other.stragglers_;
  copy.far_ = other.far_;
  copy.max_id_ = other.max_id_;
  swap(copy);
  return *this;
}

template <class Row>
Row* basic_row_store<Row>::allocate_block() {
  // Aligned to 2 MiB so the block is whole huge pages where the kernel
  // gives them; the ends of the mapping around it are unmapped again.
  constexpr std::size_t huge = std::size_t{2} << 20;
  void* p = ::mmap(nullptr, block_bytes + huge, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto start = reinterpret_cast<std::uintptr_t>(p);
  auto aligned = (start + huge - 1) & ~(huge - 1);
  if (aligned > start) ::munmap(p, aligned - start);
  if (auto tail = start + block_bytes + huge - (aligned + block_bytes); tail > 0)
    ::munmap(reinterpret_cast<void*>(aligned + block_bytes), tail);
#ifdef MADV_HUGEPAGE
  (void)::madvise(reinterpret_cast<void*>(aligned), block_bytes, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<Row*>(aligned);
}

template <class Row>
void basic_row_store<Row>::free_block(Row* block, job_id built) noexcept {
  std::destroy_n(block, built);
  ::munmap(block, block_bytes);
}

template <class Row>
void basic_row_store<Row>::clear() noexcept {
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    if (blocks_[i] != nullptr) free_block(blocks_[i], built_in(i));
  blocks_.clear();
  stragglers_.clear();
  far_.clear();
  first_block_ = 0;
  built_ = 1;
  max_id_ = 0;
}

template <class Row>
Row* basic_row_store<Row>::slot(job_id id) {
  if (id == 0 || id >= built_) return nullptr;
  const auto b = block_of(id);
  if (b < first_block_ || b - first_block_ >= blocks_.size()) return nullptr;
  Row* block = blocks_[b - first_block_];
  return block == nullptr ? nullptr : &block[(id - 1) % block_rows];
}

template <class Row>
Row* basic_row_store<Row>::find(job_id id) {
  if (id == 0) return nullptr;
  if (Row* r = slot(id)) return r;
  auto& map = id < built_ ? stragglers_ : far_;
  auto i = map.find(id);
  return i == map.end() ? nullptr : &i->second;
}

template <class Row>
bool basic_row_store<Row>::released(job_id id) const {
  if (id == 0 || id >= built_) return false;
  const auto b = block_of(id);
  const bool block_released = b < first_block_ || blocks_[b - first_block_] == nullptr;
  return block_released && !stragglers_.contains(id);
}

template <class Row>
Row& basic_row_store<Row>::get(job_id id, job_id extend_limit) {
  max_id_ = std::max(max_id_, id);
  if (Row* r = find(id)) return *r;
  if (id < built_) return stragglers_[id];  // in a released block
  if (id > extend_limit) return far_[id];
  extend_to(id);
  return *slot(id);
}

template <class Row>
void basic_row_store<Row>::extend_to(job_id id) {
  if (id < built_) return;
  while (end_id() <= id) blocks_.push_back(allocate_block());
  for (; built_ <= id; ++built_) {
    const auto b = block_of(built_) - first_block_;
    ::new (static_cast<void*>(&blocks_[b][(built_ - 1) % block_rows])) Row();
  }
  // Rows that were far move into the blocks once these reach them.
  for (auto it = far_.begin(); it != far_.end();) {
    if (it->first < built_) {
      *slot(it->first) = std::move(it->second);
      it = far_.erase(it);
    } else {
      ++it;
    }
  }
}

template <class Row>
void basic_row_store<Row>::reserve_to(job_id id) {
  if (id == 0) return;
  extend_to(id);
}

template <class Row>
std::size_t basic_row_store<Row>::rows_held() const {
  std::size_t n = stragglers_.size() + far_.size();
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    if (blocks_[i] != nullptr) n += built_in(i);
  return n;
}

template <class Row>
std::vector<std::pair<std::uint64_t, std::uint64_t>> basic_row_store<Row>::released_ranges()
    const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (first_block_ > 0) out.emplace_back(0, first_block_ - 1);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i] != nullptr) continue;
    const std::uint64_t b = first_block_ + i;
    if (!out.empty() && out.back().second + 1 == b)
      out.back().second = b;
    else
      out.emplace_back(b, b);
  }
  return out;
}

template <class Row>
void basic_row_store<Row>::restore_released(
    const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
  clear();
  if (ranges.empty()) return;
  std::size_t k = 0;
  if (ranges[0].first == 0) first_block_ = ranges[k++].second + 1;
  for (; k < ranges.size(); ++k) {
    while (first_block_ + blocks_.size() < ranges[k].first) {
      Row* block = allocate_block();
      std::uninitialized_value_construct_n(block, block_rows);
      blocks_.push_back(block);
    }
    while (first_block_ + blocks_.size() <= ranges[k].second) blocks_.push_back(nullptr);
  }
  built_ = end_id();
  max_id_ = built_ - 1;
}

}  // namespace jobsmith
