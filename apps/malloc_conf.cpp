// jemalloc's settings for the jobsmith binary (read once, at the first
// allocation). jemalloc's default is 4 arenas per core; each thread that
// allocates (CAF workers, the journal, HTTP threads, RocksDB's) binds to one,
// and every arena keeps freed pages for reuse. On the 2-core machines this
// engine targets, 2 arenas kept the server's peak RSS in
// `bench --url --jobs 100000` at 192 MB instead of ~217 MB
// (docs/benchmarks.md). Overridden at run time by the MALLOC_CONF variable.
extern "C" {
// NOLINTNEXTLINE: jemalloc looks this symbol up by name.
const char* malloc_conf = "narenas:2";
}
