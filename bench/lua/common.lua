-- Shared by every scenario: one connection per wrk thread (run wrk with -t N -c N), so a
-- thread's Lua state is its connection's state, and a refresh chain stays on one connection.
-- BENCH_TOKENS names a file with one token per line, BENCH_USERS one "email password" per line;
-- thread i takes line i.

local counter = 0
local threads = {}

function setup(thread)
   counter = counter + 1
   thread:set("index", counter)
   table.insert(threads, thread)
end

local function line(path, n)
   if path == nil or path == "" then return nil end
   local i = 0
   for l in io.lines(path) do
      i = i + 1
      if i == n then return l end
   end
   error("file " .. path .. " has fewer than " .. n .. " lines")
end

function init(args)
   token = line(os.getenv("BENCH_TOKENS"), index)
   local user = line(os.getenv("BENCH_USERS"), index)
   if user then
      email, password = user:match("^(%S+) (%S+)$")
   end
   failures = 0
   math.randomseed(index * 7919)
end

function bearer()
   return { ["Authorization"] = "Bearer " .. token, ["X-DreamFactory-API-Key"] = "bench" }
end

function login_request()
   return wrk.format("POST", "/api/v2/user/session",
      { ["Content-Type"] = "application/json" },
      '{"email":"' .. email .. '","password":"' .. password .. '","remember_me":true}')
end

-- Follows the chain: a response carrying a token replaces the thread's token.
function take_token(status, body)
   if status ~= 200 then
      failures = failures + 1
      return
   end
   local t = body:match('"session_token"%s*:%s*"([^"]+)"')
   if t then token = t end
end

-- A scenario may define result_fields(threads, summary), returning more " name=value" fields
-- for the RESULT line (mixed.lua: latency per kind of request).
function done(summary, latency, requests)
   local extra = result_fields and result_fields(threads, summary) or ""
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status
   local e = summary.errors
   io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d "
      .. "connect=%d read=%d write=%d status=%d timeout=%d%s\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      summary.requests, errors, e.connect, e.read, e.write, e.status, e.timeout, extra))
end
