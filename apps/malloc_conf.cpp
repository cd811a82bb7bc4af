// jemalloc's settings for the jobsmith binary (read once, at the first
// allocation). jemalloc's default is 4 arenas per core; each thread that
// allocates (CAF workers, the journal, HTTP threads, RocksDB's) binds to one,
// and every arena keeps freed pages for reuse. On the 2-core machines this
// engine targets, 2 arenas kept the server's peak RSS in
// `bench --url --jobs 100000` at 192 MB instead of ~217 MB. (`serve` also
// returns freed pages sooner, apps/server/serve_cmd.cpp.) The MALLOC_CONF
// variable overrides these at run time, option by option.
extern "C" {
// NOLINTNEXTLINE: jemalloc looks this symbol up by name.
const char* malloc_conf = "narenas:2";
}
