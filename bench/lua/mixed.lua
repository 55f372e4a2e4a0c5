-- mixed: 90 % get, 9 % refresh, 1 % login, each connection on its own session chain (a login
-- starts a new chain, as a user logging in again on that device would).
local kind = "get"

function request()
   local r = math.random(100)
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
   if kind == "get" then
      if status ~= 200 then failures = failures + 1 end
   else
      take_token(status, body)
   end
end
