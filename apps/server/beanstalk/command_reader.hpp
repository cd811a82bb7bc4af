// The beanstalkd protocol's input side as a pure byte parser: no sockets, no
// engine, no clock, so a test can drive it byte by byte
// (tests/apps/server/beanstalk_parser_test.cpp).
//
// Grammar (beanstalkd's protocol.txt; every line ends with "\r\n"):
//   put <pri> <delay> <ttr> <bytes>\r\n<body of exactly bytes>\r\n
//   use|watch|ignore|stats-tube <tube>        pause-tube <tube> <delay>
//   reserve        reserve-with-timeout <seconds>
//   delete|touch|peek|kick-job|stats-job <id>
//   release <id> <pri> <delay>    bury <id> <pri>    kick <bound>
//   peek-ready|peek-delayed|peek-buried|stats|list-tubes|list-tube-used|
//   list-tubes-watched|quit
//   auth <token>                              (jobsmith's extension)
// Numbers are unsigned decimal: 32 bits, ids 64 bits. Arguments are
// separated by one or more spaces.
//
// Refusals, as beanstalkd answers them, and what is consumed:
//   UNKNOWN_COMMAND  the first word is no command (or a command that takes
//                    arguments came without any: "delete\r\n")
//   BAD_FORMAT       wrong arguments; a line longer than max_line_bytes
//                    (the rest of that line up to its "\n" is thrown away,
//                    so one long line costs one answer)
//   JOB_TOO_BIG      put's <bytes> above max_job_bytes: its body and CRLF
//                    are skipped as they arrive, unread
//   EXPECTED_CRLF    a put body not followed by "\r\n" (body and the two
//                    bytes are consumed)
// After each refusal the next line is a fresh command, as in beanstalkd.
//
// Memory: the reader holds what feed() gave it and next() has not consumed;
// the caller bounds that by reading only while next() wants more bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobsmith::server::beanstalk {

enum class verb : std::uint8_t {
  put,
  use,
  reserve,
  reserve_with_timeout,
  delete_job,
  release,
  bury,
  kick,
  kick_job,
  touch,
  watch,
  ignore,
  peek,
  peek_ready,
  peek_delayed,
  peek_buried,
  stats_job,
  stats_tube,
  stats,
  list_tubes,
  list_tube_used,
  list_tubes_watched,
  pause_tube,
  quit,
  auth,
};
inline constexpr std::size_t verb_count = static_cast<std::size_t>(verb::auth) + 1;

/// The command's name as a client writes it ("reserve-with-timeout").
std::string_view to_string(verb v);

/// One parsed command. Only the fields of its verb are set.
struct command {
  verb what = verb::quit;
  std::uint64_t id = 0;       // delete, release, bury, touch, peek, kick-job, stats-job
  std::uint32_t pri = 0;      // put, release, bury
  std::uint32_t seconds = 0;  // put/release delay, reserve-with-timeout, pause-tube delay
  std::uint32_t ttr = 0;      // put (as sent; 0 is raised to 1 by the mapping)
  std::uint32_t bound = 0;    // kick
  std::string name;           // the tube, or auth's token
  std::string body;           // put
};

/// What next() found: a command, or the refusal to answer in its place.
struct input_item {
  std::optional<command> cmd;
  std::string_view refusal;  // "BAD_FORMAT", ... when cmd is empty
};

/// beanstalkd's tube names: 1 to 200 bytes of letters, digits and
/// "-+/;.$_()", not starting with '-'.
bool valid_tube_name(std::string_view name);

class command_reader {
 public:
  /// beanstalkd's command line buffer: 224 bytes including the CRLF.
  static constexpr std::size_t max_line_bytes = 224;

  explicit command_reader(std::size_t max_job_bytes) : max_job_bytes_(max_job_bytes) {}

  /// Appends bytes received from the client.
  void feed(std::string_view bytes);
  /// The next whole command or refusal, or nullopt when more bytes are needed.
  std::optional<input_item> next();
  /// Bytes held and not yet consumed.
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  input_item parse_line(std::string_view line);
  std::optional<input_item> take_body();
  void compact();

  const std::size_t max_job_bytes_;
  std::string buf_;
  std::size_t pos_ = 0;           // first byte not yet consumed
  std::uint64_t skip_ = 0;        // bytes of a refused body still to throw away
  bool discarding_line_ = false;  // inside a line that was too long
  std::optional<command> put_;    // a put whose body has not arrived whole
};

}  // namespace jobsmith::server::beanstalk
