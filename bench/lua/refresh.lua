-- refresh: each connection refreshes its own chain of rotating tokens (PUT, then the next
-- PUT presents the token the last one returned).
function request()
   return wrk.format("PUT", "/api/v2/user/session", bearer())
end

function response(status, headers, body)
   take_token(status, body)
end
