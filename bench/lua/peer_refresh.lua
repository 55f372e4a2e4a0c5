-- peer_refresh: the simplejwt peer's refresh chain (bench/peer), as refresh.lua for tenure: each
-- connection presents its own refresh token to POST /api/token/refresh/, and the next request
-- presents the one the answer carried (rotation and blacklist are on: a spent token is refused).
function request()
   return wrk.format("POST", "/api/token/refresh/", { ["Content-Type"] = "application/json" },
      '{"refresh":"' .. token .. '"}')
end

function response(status, headers, body)
   if status ~= 200 then
      failures = failures + 1
      return
   end
   local t = body:match('"refresh"%s*:%s*"([^"]+)"')
   if t then token = t end
end
