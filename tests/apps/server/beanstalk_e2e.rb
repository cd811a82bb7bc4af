#!/usr/bin/env ruby
# frozen_string_literal: true
#
# `jobsmith serve --beanstalk-listen` end to end, with a client nobody here
# wrote: Debian's ruby-beaneater (and a plain TCP socket where beaneater
# cannot go: pipelining, malformed lines, auth). Starts the real binary on
# free loopback ports over a fresh data directory, checks what a beanstalkd
# user would notice, and what the same jobs look like over the HTTP API.
#
#   ruby beanstalk_e2e.rb path/to/jobsmith
#
# Exit status 0 when every check passed. Every wait polls against a
# deadline; nothing sleeps for a fixed time to let something happen.

require 'beaneater'
require 'json'
require 'net/http'
require 'socket'
require 'tmpdir'
require 'fileutils'

BINARY = ARGV[0] || abort('usage: beanstalk_e2e.rb JOBSMITH_BINARY')
$failures = []

def check(what, ok, detail = nil)
  if ok
    puts "ok   #{what}"
  else
    $failures << what
    puts "FAIL #{what}#{detail.nil? ? '' : ": #{detail.inspect}"}"
  end
  ok
end

def monotonic
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# Polls the block until it returns a truthy value or `limit` seconds pass.
def wait_until(limit = 10)
  deadline = monotonic + limit
  loop do
    v = yield
    return v if v
    return nil if monotonic > deadline
    sleep 0.01
  end
end

# One `jobsmith serve`, by the pid this script started.
class Server
  attr_reader :http_port, :bs_port, :log, :pid

  def initialize(dir, name, extra = [])
    @dir = dir
    @data = File.join(dir, "#{name}-data")
    @log = File.join(dir, "#{name}.log")
    @extra = extra
  end

  # Starts the server; true once both ports are in its log.
  def start(extra = @extra)
    File.write(@log, '')
    @pid = Process.spawn(BINARY, 'serve', '--data', @data, '--listen', '127.0.0.1:0',
                         *extra, out: @log, err: @log, pgroup: false)
    ok = wait_until(30) do
      text = File.read(@log)
      h = text[%r{on http://127\.0\.0\.1:(\d+)}, 1]
      b = text[/beanstalkd protocol on 127\.0\.0\.1:(\d+)/, 1]
      @http_port = h.to_i if h
      @bs_port = b.to_i if b
      (h && b) || exited?
    end
    ok && !exited?
  end

  def exited?
    return true if @pid.nil?
    if (st = Process.waitpid2(@pid, Process::WNOHANG))
      @status = st[1]
      @pid = nil
      return true
    end
    false
  end

  attr_reader :status

  # SIGTERM and wait; the exit status, or nil after a SIGKILL.
  def stop
    return @status&.exitstatus if @pid.nil?
    Process.kill('TERM', @pid)
    if wait_until(30) { exited? }
      @status.exitstatus
    else
      Process.kill('KILL', @pid)
      Process.waitpid(@pid)
      @pid = nil
      nil
    end
  end

  def get_json(path, token = nil)
    uri = URI("http://127.0.0.1:#{@http_port}#{path}")
    req = Net::HTTP::Get.new(uri)
    req['Authorization'] = "Bearer #{token}" if token
    res = Net::HTTP.start(uri.host, uri.port) { |h| h.request(req) }
    [res.code.to_i, (JSON.parse(res.body) rescue res.body)]
  end

  def job(id)
    get_json("/v1/jobs/#{id}")[1]
  end

  def beaneater
    Beaneater.new("127.0.0.1:#{@bs_port}")
  end

  def raw
    Raw.new(@bs_port)
  end
end

# A plain socket speaking the protocol by hand.
class Raw
  def initialize(port)
    @s = TCPSocket.new('127.0.0.1', port)
    @s.binmode
    @buf = +''.b
  end

  def write(bytes)
    @s.write(bytes.b)
    self
  end

  # One answer: [line, body or nil]; nil when none came within `limit` s.
  def answer(limit = 10)
    line = read_until_crlf(limit)
    return nil if line.nil?
    if (m = line.match(/\A(?:RESERVED|FOUND) \d+ (\d+)\z/) || line.match(/\AOK (\d+)\z/))
      body = read_exactly(m[1].to_i + 2, limit)
      return [line, body && body[0...-2]]
    end
    [line, nil]
  end

  def answers(n, limit = 10)
    Array.new(n) { answer(limit) }
  end

  def close
    @s.close
  end

  # True once the server closed the connection (EOF within `limit` s).
  def closed_by_server?(limit = 5)
    return false unless IO.select([@s], nil, nil, limit)
    @s.read_nonblock(1, exception: false).nil?
  rescue IOError, SystemCallError
    true
  end

  private

  def fill(limit)
    return false unless IO.select([@s], nil, nil, limit)
    chunk = @s.read_nonblock(65_536, exception: false)
    return false if chunk.nil? || chunk == :wait_readable
    @buf << chunk
    true
  end

  def read_until_crlf(limit)
    deadline = monotonic + limit
    until (i = @buf.index("\r\n"))
      return nil if monotonic > deadline || !fill(deadline - monotonic)
    end
    @buf.slice!(0, i + 2)[0...-2]
  end

  def read_exactly(n, limit)
    deadline = monotonic + limit
    while @buf.bytesize < n
      return nil if monotonic > deadline || !fill(deadline - monotonic)
    end
    @buf.slice!(0, n)
  end
end

def types(job)
  (job['history'] || []).map { |e| e['type'] }
end

def expect_error(klass)
  yield
  false
rescue klass
  true
end

dir = Dir.mktmpdir('jobsmith-beanstalk-')
started_at = monotonic
srv = Server.new(dir, 'main')
unless srv.start(['--beanstalk-listen', '127.0.0.1:0'])
  puts File.read(srv.log)
  abort 'the server did not start'
end
puts "server pid #{srv.pid}: http #{srv.http_port}, beanstalk #{srv.bs_port}"

begin
  bean = srv.beaneater

  # -- put, reserve, delete ------------------------------------------------------
  tube = bean.tubes['roundtrip']
  put = tube.put('{"to":"a@b.c"}', pri: 10, ttr: 60)
  check 'put answers INSERTED with an id', put[:status] == 'INSERTED' && put[:id].to_i.positive?, put
  job = tube.reserve(5)
  check 'reserve gets the body back', job.body == '{"to":"a@b.c"}' && job.id.to_i == put[:id].to_i, job.body
  check 'stats-job says reserved, pri and ttr as put',
        job.stats.state == 'reserved' && job.stats.pri == 10 && job.stats.ttr == 60, job.stats
  check 'delete answers DELETED', job.delete[:status] == 'DELETED'
  check 'a deleted job is gone', bean.jobs.find(put[:id]).nil?
  rt = srv.job(put[:id])
  check 'over HTTP the job succeeded, with its payload as JSON',
        rt.dig('job', 'state') == 'succeeded' && rt.dig('job', 'spec', 'payload') == { 'to' => 'a@b.c' }, rt['job']
  check 'its events are in the log, caused by the connection',
        types(rt) == %w[job.submitted job.started job.succeeded] &&
          rt['history'].all? { |e| e['principal'] == 'beanstalk' } &&
          rt['history'][1].dig('body', 'worker').start_with?('beanstalk:'), rt['history']

  # -- bodies that are not JSON come back byte for byte ----------------------------------
  bin = tube.put((0..255).map(&:chr).join.b * 3 + "\r\nend".b)
  text = tube.put('plain text, not JSON')
  got = [tube.reserve(5), tube.reserve(5)].sort_by { |j| j.id.to_i }
  check 'a binary body comes back exactly', got[0].body.b == ((0..255).map(&:chr).join.b * 3 + "\r\nend".b)
  check 'a text body comes back exactly', got[1].body == 'plain text, not JSON'
  check 'over HTTP: base64 and text envelopes',
        srv.job(bin[:id]).dig('job', 'spec', 'payload').key?('$beanstalk_base64') &&
          srv.job(text[:id]).dig('job', 'spec', 'payload') == { '$beanstalk_text' => 'plain text, not JSON' }
  got.each(&:delete)

  # -- pipelining: many commands in one write, answers in order -----------------------------
  raw = srv.raw
  n = 200
  batch = +"use piped\r\n"
  n.times { |i| batch << "put #{i % 7} 0 60 #{"job #{i}".bytesize}\r\njob #{i}\r\n" }
  batch << "list-tube-used\r\nwatch piped\r\nignore default\r\nreserve-with-timeout 0\r\nstats-tube piped\r\n"
  t0 = monotonic
  raw.write(batch)
  ans = raw.answers(n + 6)
  inserted = ans[1, n].map { |a| a && a[0][/\AINSERTED (\d+)\z/, 1]&.to_i }
  check "#{n} pipelined puts answered INSERTED in order",
        ans[0]&.first == 'USING piped' && inserted.none?(&:nil?) && inserted == inserted.sort && inserted.uniq.size == n,
        ans.first(3)
  rest = ans[n + 1, 5].map { |a| a&.first }
  check 'the commands after them answered in order, and the reserve saw the puts',
        rest[0] == 'USING piped' && rest[1] == 'WATCHING 2' && rest[2] == 'WATCHING 1' &&
          rest[3]&.start_with?('RESERVED') && ans[n + 4][1] == 'job 0' && rest[4]&.start_with?('OK'), rest
  check 'stats-tube counts them', ans[n + 5][1].to_s.include?("current-jobs-ready: #{n - 1}"), ans[n + 5]
  puts "     (#{n + 6} pipelined commands answered in #{((monotonic - t0) * 1000).round} ms)"
  raw.close

  # -- malformed input: refused like beanstalkd, and the connection goes on ---------------------
  raw = srv.raw
  raw.write("bogus\r\ndelete abc\r\nput 0 0 1 3\r\nabcde\r\n#{'x' * 300}\r\nput 0 0 1 70000\r\n" \
            "#{'y' * 70_000}\r\nreserve extra\r\nlist-tube-used\r\n")
  got = raw.answers(7).map { |a| a&.first }
  check 'malformed lines get UNKNOWN_COMMAND, BAD_FORMAT, EXPECTED_CRLF, JOB_TOO_BIG and the connection continues',
        got == %w[UNKNOWN_COMMAND BAD_FORMAT EXPECTED_CRLF UNKNOWN_COMMAND BAD_FORMAT JOB_TOO_BIG BAD_FORMAT] &&
          raw.answer&.first == 'USING default', got
  raw.close

  # -- a reservation belongs to its connection ---------------------------------------------------------
  owner = srv.beaneater
  other = srv.beaneater
  own = owner.tubes['owned']
  id = own.put('mine', ttr: 60)[:id]
  held = own.reserve(5)
  check 'another connection cannot delete a reserved job (NOT_FOUND)',
        expect_error(Beaneater::NotFoundError) { other.connection.transmit("delete #{id}") }
  refused = ["release #{id} 0 0", "bury #{id} 0", "touch #{id}"].all? do |cmd|
    expect_error(Beaneater::NotFoundError) { other.connection.transmit(cmd) }
  end
  check 'nor release, bury or touch it', refused
  check 'the owner can touch and delete it',
        held.touch[:status] == 'TOUCHED' && held.delete[:status] == 'DELETED'

  # -- a client that goes away gives its reservations back at once --------------------------------------
  gone = srv.beaneater
  id = gone.tubes['leaving'].put('left behind', ttr: 120)[:id]
  gone.tubes['leaving'].reserve(5)
  gone.close
  t0 = monotonic
  again = other.tubes['leaving'].reserve(10)
  took = monotonic - t0
  check "a job held by a closed connection is reservable again at once (#{(took * 1000).round} ms, TTR 120 s)",
        again.id.to_i == id.to_i && took < 2, took
  again.delete

  # -- TTR: a reservation that is not touched runs out ---------------------------------------------------------
  slow = srv.beaneater
  id = slow.tubes['ttr'].put('slow worker', ttr: 1)[:id]
  stale = slow.tubes['ttr'].reserve(5)
  t0 = monotonic
  fresh = other.tubes['ttr'].reserve(10)
  took = monotonic - t0
  check "after TTR 1 s another connection reserves it (#{(took * 1000).round} ms)",
        fresh.id.to_i == id.to_i && took > 0.5 && took < 5, took
  check 'the first worker can no longer delete it', expect_error(Beaneater::NotFoundError) { stale.delete }
  check 'stats-job counts the timeout', fresh.stats.timeouts == 1 && fresh.stats.reserves == 2, fresh.stats
  check 'the new holder deletes it', fresh.delete[:status] == 'DELETED'
  check 'the reclaim is in the log', types(srv.job(id)).include?('job.reclaimed')

  # -- bury, then kick ------------------------------------------------------------------------------------------
  bt = bean.tubes['buried']
  id = bt.put('needs a look')[:id]
  j = bt.reserve(5)
  check 'bury answers BURIED', j.bury[:status] == 'BURIED'
  check 'stats-job says buried', bean.jobs.find(id).stats.state == 'buried'
  check 'peek-buried finds it', bt.peek(:buried)&.id.to_i == id.to_i
  check 'reserve-with-timeout 0 does not get a buried job',
        expect_error(Beaneater::TimedOutError) { bt.reserve(0) }
  check 'kick 10 kicks it', bt.kick(10)[:id].to_i == 1
  j = bt.reserve(5)
  check 'the kicked job is reservable', j.id.to_i == id.to_i && j.stats.kicks == 1 && j.stats.buries == 1
  j.bury
  check 'kick-job kicks one job by id', bean.jobs.find(id).kick[:status] == 'KICKED'
  check 'delete of a ready job (held by no one) cancels it', bean.jobs.find(id).delete[:status] == 'DELETED'
  hist = srv.job(id)
  check 'over HTTP: failed (not retryable), requested, cancelled',
        hist.dig('job', 'state') == 'cancelled' && types(hist).include?('job.requested') &&
          hist['history'].any? { |e| e['type'] == 'job.failed' && e.dig('body', 'retryable') == false }, types(hist)
  id = bt.put('buried, then deleted')[:id]
  bt.reserve(5).bury
  check 'delete of a buried job answers DELETED', bean.jobs.find(id).delete[:status] == 'DELETED'
  check 'and it is gone', bean.jobs.find(id).nil? && bt.peek(:buried).nil?

  # -- release with a delay ---------------------------------------------------------------------------------------
  # A delay longer than the TTR: the server keeps the lease alive meanwhile.
  rt = bean.tubes['released']
  id = rt.put('again later', pri: 5, ttr: 1)[:id]
  j = rt.reserve(5)
  t0 = monotonic
  check 'release with delay 2 answers RELEASED', j.release(delay: 2, pri: 5)[:status] == 'RELEASED'
  s = bean.jobs.find(id).stats
  check 'the released job is delayed', s.state == 'delayed' && s.delay == 2, s
  check 'peek-delayed finds it', rt.peek(:delayed)&.id.to_i == id.to_i
  check 'it is not reservable before its delay', expect_error(Beaneater::TimedOutError) { rt.reserve(0) }
  j = rt.reserve(10)
  took = monotonic - t0
  check "it is reservable once the delay is over (#{(took * 1000).round} ms)", j.id.to_i == id.to_i && took > 1.8 && took < 6
  check 'its 1 s TTR did not run out while it waited its 2 s', j.stats.timeouts.zero?, j.stats
  check 'release without delay: ready at once', j.release(delay: 0)[:status] == 'RELEASED' && rt.reserve(0).id.to_i == id.to_i
  check 'stats-job counts both releases', bean.jobs.find(id).stats.releases == 2
  bean.jobs.find(id).delete

  # -- put with a delay; kick-job makes it ready ------------------------------------------------------------------------
  id = rt.put('delayed put', delay: 3600)[:id]
  check 'a put with delay is delayed', bean.jobs.find(id).stats.state == 'delayed'
  check 'kick-job makes it ready', bean.jobs.find(id).kick[:status] == 'KICKED' && rt.reserve(5).id.to_i == id.to_i

  # -- tubes, stats, pause ------------------------------------------------------------------------------------------------
  st = bean.stats
  check 'stats parses as YAML and counts connections, commands and jobs',
        st.current_connections >= 3 && st.cmd_put >= n && st.total_jobs >= n && st.max_job_size == 65_535 &&
          st.current_jobs_ready >= n - 1, st
  names = bean.tubes.all.map(&:name)
  check 'list-tubes lists the tubes used', %w[default roundtrip piped buried released].all? { |t| names.include?(t) }, names
  pt = bean.tubes['paused']
  pt.put('waits for the pause')
  check 'pause-tube answers PAUSED', pt.pause(1)[:status] == 'PAUSED'
  check 'a paused tube gives no job', expect_error(Beaneater::TimedOutError) { pt.reserve(0) }
  t0 = monotonic
  j = pt.reserve(10)
  check "after the pause the job comes (#{((monotonic - t0) * 1000).round} ms)", j.body == 'waits for the pause'
  j.delete

  # -- stop gives back what connections hold; a restart serves the same jobs -----------------------------------------------
  keeper = srv.beaneater
  id = keeper.tubes['restart'].put('held over a restart', ttr: 120)[:id]
  keeper.tubes['restart'].reserve(5)
  # Reserves waiting on the same tube when the server stops: their lease
  # calls must not take the job as it is released.
  waiters = Array.new(4) { srv.raw.write("watch restart\r\nignore default\r\nreserve\r\n") }
  waiters.each { |w| w.answers(2) }
  check 'SIGTERM stops the server cleanly', srv.stop == 0
  waiters.each(&:close)
  check 'the server started again over the same data', srv.start(['--beanstalk-listen', '127.0.0.1:0'])
  fresh = srv.beaneater
  j = begin
    fresh.tubes['restart'].reserve(0)
  rescue Beaneater::TimedOutError
    nil
  end
  # The stop released it: ready at once, not after its 120 s TTR.
  check 'a job reserved when the server stopped is ready at once after the restart',
        j&.id.to_i == id.to_i && types(srv.job(id)).include?('job.failed'), types(srv.job(id))

  # -- auth: tokens make `auth` necessary; no tokens means loopback only ----------------------------------------------------
  tokens = File.join(dir, 'tokens.json')
  File.write(tokens, JSON.generate(tokens: [{ name: 'carol', token: 's3cret', role: 'admin' },
                                            { name: 'walt', token: 'w0rker', role: 'worker' }]))
  open = Server.new(dir, 'open')
  check 'without tokens a non-loopback beanstalkd address is refused',
        !open.start(['--beanstalk-listen', '0.0.0.0:0']) && open.status&.exitstatus != 0 &&
          File.read(open.log).include?('without tokens')
  authed = Server.new(dir, 'authed')
  check 'with tokens the server starts', authed.start(['--tokens', tokens, '--beanstalk-listen', '127.0.0.1:0'])
  raw = authed.raw
  raw.write("put 0 0 1 2\r\nhi\r\nauth wrong\r\nauth s3cret\r\nput 0 0 1 2\r\nhi\r\n")
  got = raw.answers(4).map { |a| a&.first }
  check 'before auth: UNAUTHORIZED; a wrong token: UNAUTHORIZED; the right one: AUTHORIZED',
        got[0] == 'UNAUTHORIZED' && got[1] == 'UNAUTHORIZED' && got[2] == 'AUTHORIZED' && got[3]&.start_with?('INSERTED'), got
  jid = got[3].to_s.split.last
  code, body = authed.get_json("/v1/jobs/#{jid}", 's3cret')
  check "the job's events carry the token's name",
        code == 200 && body['history']&.first&.dig('principal') == 'carol', [code, body]
  # A client's generic call reads the one-word answer (beaneater's transmit
  # would wait for a body after an OK).
  client = authed.beaneater
  answer = client.connection.transmit(+'auth s3cret')
  check "beaneater's transmit reads the answer to auth", answer[:status] == 'AUTHORIZED', answer
  put = client.tubes['authed'].put('via beaneater')
  check 'after auth through beaneater, a put is INSERTED', put[:status] == 'INSERTED', put
  client.close
  raw.write("auth w0rker\r\nput 0 0 1 2\r\nhi\r\nreserve-with-timeout 0\r\n")
  got = raw.answers(3).map { |a| a&.first }
  check "a worker's token may reserve but not put", got[0] == 'AUTHORIZED' && got[1] == 'FORBIDDEN' && got[2]&.start_with?('RESERVED'), got
  raw.close
  check 'the token server stops cleanly', authed.stop == 0
ensure
  code = srv.stop
  check 'SIGTERM stops the server cleanly at the end', code == 0
  puts "#{$failures.size} failures, #{(monotonic - started_at).round(1)} s"
  if $failures.empty?
    FileUtils.rm_rf(dir)
  else
    puts "server log: #{srv.log}"
  end
end
exit($failures.empty? ? 0 : 1)
