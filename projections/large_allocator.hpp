// An allocator for the queue view's row vector, which holds every job of
// the history (hundreds of MB). Blocks of 64 MiB and more are mapped
// directly and advised to use transparent huge pages, so filling them
// takes a page fault per 2 MiB instead of per 4 KiB: on this machine
// (THP in "madvise" mode) decoding a 3.5 M-row snapshot spent a quarter of
// its time in page faults on 4 KiB pages. Smaller blocks come from the
// heap as usual. Where huge pages are unavailable the advice is ignored
// and the memory is ordinary.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace jobsmith {

template <class T>
class large_allocator {
 public:
  using value_type = T;
  /// Blocks this large or larger are mapped directly.
  static constexpr std::size_t mapped_bytes = std::size_t{64} << 20;

  large_allocator() noexcept = default;
  template <class U>
  large_allocator(const large_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < mapped_bytes) return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    (void)::madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < mapped_bytes)
      ::operator delete(p, std::align_val_t{alignof(T)});
    else
      ::munmap(p, bytes);
  }

  template <class U>
  bool operator==(const large_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace jobsmith
