-- get: the session check (GET /api/v2/user/session) with the thread's token.
function request()
   return wrk.format("GET", "/api/v2/user/session", bearer())
end
