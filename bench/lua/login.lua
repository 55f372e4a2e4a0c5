-- login: a password login per request (Argon2-bound).
function request()
   return login_request()
end
