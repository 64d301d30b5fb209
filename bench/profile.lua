-- GET /profile with a valid session cookie: one session look-up per request.
-- Arguments: session=<id> (required), html=1 to ask for the page as a browser does,
-- pace=<ms> to wait that long before each request on a connection (a paced latency probe).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function init(args)
   local options = common.parse_args(args)
   assert(options.session, "profile.lua needs session=<id>")
   wrk.method = "GET"
   wrk.path = "/profile"
   wrk.headers["Cookie"] = "session_id=" .. options.session
   if options.html == "1" then
      wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
      -- A redirect to the login page would pass wrk's own 2xx/3xx check: insist on 200.
      common.expect_status(200)
   else
      wrk.headers["Accept"] = "application/json"
   end
   local pace_ms = tonumber(options.pace or "0")
   if pace_ms > 0 then
      -- Defined only when asked for: with a `delay` function wrk waits on a timer before every
      -- request, which would cost throughput in the unpaced runs.
      delay = function()
         return pace_ms
      end
   end
end
