// The beanstalkd protocol's pure parts: the command reader (what a client's
// bytes mean, split anywhere, and how malformed input is refused the way
// beanstalkd refuses it), and the body and priority mapping (every body
// comes back byte for byte; JSON bodies stay JSON).
#define BOOST_TEST_MODULE beanstalk_parser
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "apps/server/beanstalk/command_reader.hpp"
#include "apps/server/beanstalk/job_body.hpp"

namespace bs = jobsmith::server::beanstalk;
using bs::verb;

namespace {

/// What a reader makes of `input` fed in pieces of `chunk` bytes: one line
/// per item, "put:<pri>,<delay>,<ttr>,<body>" / "<verb> <args>" / "!REFUSAL".
std::vector<std::string> read_all(const std::string& input, std::size_t chunk,
                                  std::size_t max_job = 65535) {
  bs::command_reader r{max_job};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    r.feed(std::string_view{input}.substr(i, chunk));
    while (auto item = r.next()) {
      if (!item->cmd) {
        out.push_back("!" + std::string{item->refusal});
        continue;
      }
      auto& c = *item->cmd;
      std::string s{bs::to_string(c.what)};
      switch (c.what) {
        case verb::put:
          s += ":" + std::to_string(c.pri) + "," + std::to_string(c.seconds) + "," +
               std::to_string(c.ttr) + "," + c.body;
          break;
        case verb::release:
          s += " " + std::to_string(c.id) + " " + std::to_string(c.pri) + " " +
               std::to_string(c.seconds);
          break;
        case verb::delete_job:
        case verb::touch:
        case verb::peek:
        case verb::kick_job:
        case verb::stats_job:
          s += " " + std::to_string(c.id);
          break;
        case verb::kick:
          s += " " + std::to_string(c.bound);
          break;
        case verb::reserve_with_timeout:
          s += " " + std::to_string(c.seconds);
          break;
        case verb::pause_tube:
          s += " " + c.name + " " + std::to_string(c.seconds);
          break;
        case verb::use:
        case verb::watch:
        case verb::ignore:
        case verb::stats_tube:
        case verb::auth:
          s += " " + c.name;
          break;
        default:
          break;
      }
      out.push_back(s);
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_pipeline_means_the_same_whatever_the_reads) {
  const std::string input =
      "use emails\r\n"
      "put 1024 5 60 12\r\nhello\r\nworld\r\n"  // a body may hold CRLF
      "put 0 0 0 0\r\n\r\n"                     // and be empty
      "reserve\r\nreserve-with-timeout 0\r\n"
      "delete 42\r\nrelease 7 100 3\r\nbury 7 1\r\ntouch 7\r\nkick 10\r\nkick-job 9\r\n"
      "peek 3\r\npeek-ready\r\npeek-delayed\r\npeek-buried\r\n"
      "watch a-b+c/d;e.f$g_h(i)\r\nignore default\r\n"
      "stats\r\nstats-job 1\r\nstats-tube emails\r\nlist-tubes\r\nlist-tube-used\r\n"
      "list-tubes-watched\r\npause-tube emails 30\r\nauth s3cret\r\nquit\r\n";
  const std::string want =
      "use emails\nput:1024,5,60,hello\r\nworld\nput:0,0,0,\nreserve\nreserve-with-timeout 0\n"
      "delete 42\nrelease 7 100 3\nbury\ntouch 7\nkick 10\nkick-job 9\npeek 3\npeek-ready\n"
      "peek-delayed\npeek-buried\nwatch a-b+c/d;e.f$g_h(i)\nignore default\nstats\n"
      "stats-job 1\nstats-tube emails\nlist-tubes\nlist-tube-used\nlist-tubes-watched\n"
      "pause-tube emails 30\nauth s3cret\nquit\n";
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                            std::size_t{64}, input.size()})
    BOOST_TEST(joined(read_all(input, chunk)) == want, "chunk " << chunk << ":\n"
                                                                << joined(read_all(input, chunk)));
}

BOOST_AUTO_TEST_CASE(numbers_take_the_full_range_and_no_more) {
  BOOST_TEST(joined(read_all("put 4294967295 4294967295 4294967295 1\r\nx\r\n", 5)) ==
             "put:4294967295,4294967295,4294967295,x\n");
  BOOST_TEST(joined(read_all("delete 18446744073709551615\r\n", 5)) ==
             "delete 18446744073709551615\n");
  // One past the range, negative, signed, hex, empty: malformed.
  BOOST_TEST(joined(read_all("put 4294967296 0 1 1\r\n", 64)) == "!BAD_FORMAT\n");
  BOOST_TEST(joined(read_all("delete 18446744073709551616\r\n", 64)) == "!BAD_FORMAT\n");
  BOOST_TEST(joined(read_all("delete -1\r\ndelete +1\r\ndelete 0x10\r\nkick \r\n", 64)) ==
             "!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n");
  // Runs of spaces between arguments are fine, a trailing one is not.
  BOOST_TEST(joined(read_all("release  7   1 2\r\nrelease 7 1 2 \r\n", 64)) ==
             "release 7 1 2\n!BAD_FORMAT\n");
}

BOOST_AUTO_TEST_CASE(unknown_and_malformed_commands_are_refused_as_beanstalkd_does) {
  // Measured against beanstalkd 1.12: a command found by the start of the
  // line ("stats", "reserve") with more after it is malformed; a command
  // that needs arguments but came bare is unknown.
  BOOST_TEST(joined(read_all("hello\r\n\r\ndelete\r\npeek\r\n", 64)) ==
             "!UNKNOWN_COMMAND\n!UNKNOWN_COMMAND\n!UNKNOWN_COMMAND\n!UNKNOWN_COMMAND\n");
  BOOST_TEST(joined(read_all("reserve foo\r\nstats-job\r\nstats-tube\r\nreservex\r\n", 64)) ==
             "!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n");
  BOOST_TEST(joined(read_all("delete 1 2\r\nbury 1\r\nput 1 2 3\r\n", 64)) ==
             "!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n");
  // Tube names: beanstalkd's characters, 1 to 200 bytes, no leading '-'.
  BOOST_TEST(joined(read_all("use -x\r\nuse a*b\r\nwatch " + std::string(201, 'a') + "\r\n", 64)) ==
             "!BAD_FORMAT\n!BAD_FORMAT\n!BAD_FORMAT\n");
  BOOST_TEST(joined(read_all("use " + std::string(200, 'a') + "\r\n", 64)) ==
             "use " + std::string(200, 'a') + "\n");
  // The reader goes on after each refusal.
  BOOST_TEST(joined(read_all("nope\r\nreserve\r\n", 3)) == "!UNKNOWN_COMMAND\nreserve\n");
}

BOOST_AUTO_TEST_CASE(a_long_line_costs_one_refusal_and_the_next_line_is_read) {
  std::string longline(500, 'x');
  for (std::size_t chunk : {std::size_t{1}, std::size_t{100}, std::size_t{4096}})
    BOOST_TEST(joined(read_all(longline + "\r\nlist-tube-used\r\n", chunk)) ==
                   "!BAD_FORMAT\nlist-tube-used\n",
               "chunk " << chunk);
  // 224 bytes with the CRLF fit; 225 do not.
  BOOST_TEST(joined(read_all(std::string(222, 'a') + "\r\n", 9)) == "!UNKNOWN_COMMAND\n");
  BOOST_TEST(joined(read_all(std::string(223, 'a') + "\r\nquit\r\n", 9)) == "!BAD_FORMAT\nquit\n");
}

BOOST_AUTO_TEST_CASE(bodies_are_bounded_and_must_end_in_crlf) {
  // Too big: refused at once, the body skipped unread (even across reads).
  std::string big(1000, 'b');
  for (std::size_t chunk : {std::size_t{1}, std::size_t{10}, std::size_t{5000}})
    BOOST_TEST(joined(read_all("put 0 0 1 1000\r\n" + big + "\r\nlist-tube-used\r\n", chunk,
                               999)) == "!JOB_TOO_BIG\nlist-tube-used\n",
               "chunk " << chunk);
  BOOST_TEST(joined(read_all("put 0 0 1 999\r\n" + std::string(999, 'c') + "\r\n", 100, 999)) ==
             "put:0,0,1," + std::string(999, 'c') + "\n");
  // Not followed by CRLF: EXPECTED_CRLF, and the rest is read as commands
  // (beanstalkd answers the stray "\r\n" with UNKNOWN_COMMAND too).
  BOOST_TEST(joined(read_all("put 0 0 1 3\r\nabcde\r\nquit\r\n", 4)) ==
             "!EXPECTED_CRLF\n!UNKNOWN_COMMAND\nquit\n");
  // A malformed put line: its body is read as a command, as beanstalkd does.
  BOOST_TEST(joined(read_all("put 0 0 1\r\nquit\r\n", 4)) == "!BAD_FORMAT\nquit\n");
}

BOOST_AUTO_TEST_CASE(the_reader_holds_only_what_it_was_given) {
  bs::command_reader r{65535};
  r.feed("put 0 0 1 5\r\nhel");
  BOOST_TEST(!r.next().has_value());
  r.feed("lo\r\nres");
  auto put = r.next();
  BOOST_REQUIRE(put && put->cmd);
  BOOST_TEST(put->cmd->body == "hello");
  BOOST_TEST(!r.next().has_value());
  BOOST_TEST(r.buffered() == 3u);
  r.feed("erve\r\n");
  auto res = r.next();
  BOOST_REQUIRE(res && res->cmd);
  BOOST_TEST(bs::to_string(res->cmd->what) == "reserve");
  BOOST_TEST(r.buffered() == 0u);
}

// -- bodies and priorities ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(json_bodies_are_stored_exactly_as_sent) {
  for (std::string body : {R"({"to":"a@b.c","n":1})", "[1,2,3]", "42", "\"text\"", "true", "null",
                           " {\"spaced\" : [ 1 ] }\n", R"({"$beanstalk_text":"x","other":1})"})
    BOOST_TEST(bs::payload_of(body, 32) == body);
}

BOOST_AUTO_TEST_CASE(other_bodies_go_into_an_envelope_and_come_back_exactly) {
  using json = nlohmann::json;
  // Text: readable as a JSON string.
  BOOST_TEST(bs::payload_of("hello world", 32) == R"({"$beanstalk_text":"hello world"})");
  BOOST_TEST(bs::payload_of("", 32) == R"({"$beanstalk_text":""})");
  // Bytes that are not UTF-8: base64.
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  auto p = bs::payload_of(bytes, 32);
  BOOST_TEST(json::parse(p).contains("$beanstalk_base64"));
  BOOST_TEST(bs::body_of(p) == bytes);
  // JSON that is not allowed as a payload as sent: duplicate keys, too deep.
  BOOST_TEST(bs::payload_of(R"({"a":1,"a":2})", 32) ==
             R"({"$beanstalk_text":"{\"a\":1,\"a\":2}"})");
  std::string deep = std::string(40, '[') + std::string(40, ']');
  BOOST_TEST(json::parse(bs::payload_of(deep, 32)).contains("$beanstalk_text"));
  BOOST_TEST(bs::body_of(bs::payload_of(deep, 32)) == deep);
  // A body shaped like an envelope is enveloped itself: never ambiguous.
  for (std::string tricky : {R"({"$beanstalk_text":"x"})", R"({ "$beanstalk_base64" : "eA==" })"}) {
    auto stored = bs::payload_of(tricky, 32);
    BOOST_TEST(stored != tricky);
    BOOST_TEST(bs::body_of(stored) == tricky);
  }
  // An HTTP producer may send an envelope on purpose: a beanstalkd worker
  // gets its bytes.
  BOOST_TEST(bs::body_of(R"({"$beanstalk_base64":"AAEC"})") == std::string("\0\1\2", 3));
}

BOOST_AUTO_TEST_CASE(any_body_round_trips) {
  std::mt19937 rng{7};
  for (int round = 0; round < 2000; ++round) {
    std::string body(rng() % 64, '\0');
    const int alphabet = round % 3 == 0 ? 256 : 96;  // bytes, or mostly printable
    for (auto& c : body)
      c = static_cast<char>(round % 3 == 0 ? rng() % 256 : 32 + rng() % alphabet);
    auto payload = bs::payload_of(body, 32);
    BOOST_TEST(nlohmann::json::accept(payload));  // the engine takes it
    BOOST_TEST(bs::body_of(payload) == body);
  }
}

BOOST_AUTO_TEST_CASE(base64_and_utf8_follow_their_rfcs) {
  BOOST_TEST(bs::base64_encode("") == "");
  BOOST_TEST(bs::base64_encode("f") == "Zg==");
  BOOST_TEST(bs::base64_encode("fo") == "Zm8=");
  BOOST_TEST(bs::base64_encode("foobar") == "Zm9vYmFy");
  BOOST_TEST(*bs::base64_decode("Zm9vYg==") == "foob");
  for (std::string bad : {"Zg=", "Z===", "Zg=a", "Zm9v!mFy"}) BOOST_TEST(!bs::base64_decode(bad));
  BOOST_TEST(bs::is_utf8("plain, é, 日本, 😀"));
  for (std::string bad : {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"})
    BOOST_TEST(!bs::is_utf8(bad));
}

BOOST_AUTO_TEST_CASE(lower_pri_never_runs_later) {
  BOOST_TEST(bs::priority_of(0) == 0);
  BOOST_TEST(bs::priority_of(1024) == -1024);
  BOOST_TEST(bs::priority_of(2147483648u) == std::numeric_limits<std::int32_t>::min());
  BOOST_TEST(bs::priority_of(4294967295u) == std::numeric_limits<std::int32_t>::min());
  std::uint32_t last = 0;
  for (std::uint64_t pri = 0; pri <= 4294967295u; pri = pri * 3 + 1) {
    auto p = static_cast<std::uint32_t>(pri);
    BOOST_TEST(bs::priority_of(p) <= bs::priority_of(last));
    if (p <= 2147483648u) BOOST_TEST(bs::pri_of(bs::priority_of(p)) == p);
    last = p;
  }
  BOOST_TEST(bs::pri_of(5) == 0u);  // an HTTP job with a positive priority
}
