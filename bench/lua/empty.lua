-- The empty-handler baseline: GET / on the empty axum server.
function request()
   return wrk.format("GET", "/")
end
