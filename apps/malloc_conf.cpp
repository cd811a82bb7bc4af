// jemalloc's settings for the jobsmith binary (read once, at the first
// allocation). jemalloc's default is 4 arenas per core; each thread that
// allocates (CAF workers, the journal, HTTP threads, RocksDB's) binds to one,
// and every arena keeps freed pages for reuse. On the 2-core machines this
// engine targets, 2 arenas kept the server's peak RSS in
// `bench --url --jobs 100000` at 192 MB instead of ~217 MB. Freed dirty
// pages go back to the kernel after 1 s instead of jemalloc's 10 s: the
// server's peak RSS in the same bench fell from 191-197 to 180-183 MB at
// the same throughput (docs/benchmarks.md, 2026-12-02). The MALLOC_CONF
// variable overrides these at run time, option by option.
extern "C" {
// NOLINTNEXTLINE: jemalloc looks this symbol up by name.
const char* malloc_conf = "narenas:2,dirty_decay_ms:1000";
}
