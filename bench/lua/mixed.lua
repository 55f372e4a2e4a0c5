-- mixed: 90 % get, 9 % refresh, 1 % login, each connection on its own session chain (a login
-- starts a new chain, as a user logging in again on that device would).
--
-- Latency per kind: wrk's histogram mixes every request, so a login's queueing would hide or
-- pollute the others'. Each thread (one connection: a request() is followed by its response())
-- also times its own requests on the monotonic clock, by kind, and done() gathers every
-- thread's samples into <kind>_rps, _p50_ms, _p99_ms and _errors fields.
--
-- Those percentiles get the correction wrk applies to its own histogram, so that they are the
-- same measure as every other p99 of the report: wrk counts a request that took n ≥ 2e (e: a
-- connection's mean time per request) also as n - e, n - 2e, … down to e, for the requests its
-- connection could not send meanwhile (coordinated omission). Here those count for the kind
-- that stalled. <kind>_p99_raw_ms is the uncorrected figure: each request's own time.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

local KINDS = { "get", "refresh", "login" }

-- Per thread, as globals so that done() can read them (thread:get): <kind>_samples (flat
-- lists of microseconds: wrk 4.1 crashes copying nested tables) and <kind>_errors.
local kind, started = "get", 0
local samples = {}
for _, k in ipairs(KINDS) do
   samples[k] = {}
   _G[k .. "_samples"] = samples[k]
   _G[k .. "_errors"] = 0
end

function request()
   local r = math.random(100)
   started = now_us()
   if r <= 90 then
      kind = "get"
      return wrk.format("GET", "/api/v2/user/session", bearer())
   elseif r <= 99 then
      kind = "refresh"
      return wrk.format("PUT", "/api/v2/user/session", bearer())
   else
      kind = "login"
      return login_request()
   end
end

function response(status, headers, body)
   local list = samples[kind]
   list[#list + 1] = now_us() - started
   if status ~= 200 then _G[kind .. "_errors"] = _G[kind .. "_errors"] + 1 end
   if kind == "get" then
      if status ~= 200 then failures = failures + 1 end
   else
      take_token(status, body)
   end
end

-- The nearest-rank percentile of a sorted list of microseconds, in milliseconds.
local function percentile_ms(sorted, p)
   local i = math.max(1, math.ceil(#sorted * p / 100))
   return sorted[i] / 1000
end

-- The samples of `raw` (µs) and, as wrk's stats_correct adds them, those of the requests a
-- connection could not send while each of them took `e` µs or more too long.
local function corrected(raw, e)
   local out = {}
   for _, n in ipairs(raw) do
      out[#out + 1] = n
      if e > 0 and n >= 2 * e then
         local m = n - e
         while m > e do
            out[#out + 1] = m
            m = m - e
         end
      end
   end
   table.sort(out)
   return out
end

function result_fields(threads, summary)
   local all, errors = {}, {}
   for _, k in ipairs(KINDS) do all[k], errors[k] = {}, 0 end
   for _, thread in ipairs(threads) do
      for _, k in ipairs(KINDS) do
         for _, us in ipairs(thread:get(k .. "_samples")) do all[k][#all[k] + 1] = us end
         errors[k] = errors[k] + thread:get(k .. "_errors")
      end
   end
   local seconds = summary.duration / 1e6
   local per_connection = math.floor(summary.requests / #threads)
   local interval = per_connection > 0 and math.floor(summary.duration / per_connection) or 0
   local out = {}
   for _, k in ipairs(KINDS) do
      local raw = all[k]
      table.sort(raw)
      out[#out + 1] = string.format(" %s_rps=%.1f %s_errors=%d", k, #raw / seconds, k, errors[k])
      if #raw > 0 then
         local list = corrected(raw, interval)
         out[#out + 1] = string.format(" %s_p50_ms=%.3f %s_p99_ms=%.3f %s_p99_raw_ms=%.3f",
            k, percentile_ms(list, 50), k, percentile_ms(list, 99), k, percentile_ms(raw, 99))
      end
   end
   return table.concat(out)
end
