-- The soak's account life cycle, one step per request: register a new account, log in, read the
-- profile as JSON and as the HTML page, ask for a reset, log out; then the next account.
-- Run it with one connection per thread (-c equal to -t): each thread's steps then alternate
-- strictly with their answers, so the cookie of a login is there for the requests after it.
-- Arguments: run=<tag> (unique emails across runs), password=<pw>.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local steps = { "register", "login", "profile", "page", "reset", "logout" }
local expected = { register = 200, login = 200, profile = 200, page = 200, reset = 200, logout = 303 }
local step = 1
local account = 0
local prefix = ""
local password = ""
local cookie = "none"

local form_headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
   ["Accept"] = "application/json",
}

function init(args)
   local options = common.parse_args(args)
   prefix = "soak-" .. (options.run or "0") .. "-" .. (thread_id or 0) .. "-"
   password = common.encode(options.password or "bench-password")
   unexpected = 0
   cycles = 0
end

local function email()
   return prefix .. account .. "%40bench.test"
end

function request()
   local name = steps[step]
   if name == "register" then
      account = account + 1
      return wrk.format("POST", "/users", form_headers, "email=" .. email() .. "&password=" .. password)
   elseif name == "login" then
      return wrk.format("POST", "/sessions", form_headers, "email=" .. email() .. "&password=" .. password)
   elseif name == "profile" then
      return wrk.format("GET", "/profile", { Cookie = "session_id=" .. cookie, Accept = "application/json" })
   elseif name == "page" then
      return wrk.format("GET", "/profile", { Cookie = "session_id=" .. cookie, Accept = "text/html" })
   elseif name == "reset" then
      return wrk.format("POST", "/reset_password", form_headers, "email=" .. email())
   end
   return wrk.format("DELETE", "/sessions", { Cookie = "session_id=" .. cookie })
end

-- Checks each step's status (a 303 is a redirect wrk would pass, a 403 a lost session) and keeps
-- the session cookie of a login.
function response(status, headers, body)
   local name = steps[step]
   if status ~= expected[name] then
      unexpected = unexpected + 1
   end
   if name == "login" then
      cookie = string.match(headers["Set-Cookie"] or headers["set-cookie"] or "", "session_id=([^;]+)") or "none"
   elseif name == "logout" then
      cycles = cycles + 1
   end
   step = step % #steps + 1
end
