-- POST /users with a new email on every request.
-- Arguments: run=<tag> (makes emails unique across runs on one database), password=<pw>.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local prefix = ""
local password = ""
local counter = 0

function init(args)
   local options = common.parse_args(args)
   prefix = "reg-" .. (options.run or "0") .. "-" .. (thread_id or 0) .. "-"
   password = common.encode(options.password or "bench-password")
   wrk.method = "POST"
   wrk.path = "/users"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Accept"] = "application/json"
   common.expect_status(200)
end

function request()
   counter = counter + 1
   local body = "email=" .. prefix .. counter .. "%40bench.test&password=" .. password
   return wrk.format(nil, nil, nil, body)
end
