-- POST /sessions for seeded users, taken in turn.
-- Arguments: prefix=<p> users=<n> password=<pw> expect=<status>: logs in
-- <p>0@bench.test ... <p>(n-1)@bench.test and counts answers other than <status>
-- (200 for the right password, 401 for a wrong one).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local bodies = {}
local turn = 0

function init(args)
   local options = common.parse_args(args)
   local users = tonumber(options.users or "1")
   for n = 0, users - 1 do
      local email = options.prefix .. n .. "@bench.test"
      bodies[n + 1] = "email=" .. common.encode(email) .. "&password=" .. common.encode(options.password)
   end
   -- Threads start at different users so they do not log in the same one at once.
   turn = thread_id or 0
   wrk.method = "POST"
   wrk.path = "/sessions"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Accept"] = "application/json"
   common.expect_status(tonumber(options.expect or "200"))
end

function request()
   turn = turn + 1
   return wrk.format(nil, nil, nil, bodies[(turn % #bodies) + 1])
end
