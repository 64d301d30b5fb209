-- Shared by every scenario script: thread ids, an optional status check, and a `done` that
-- prints one machine-readable line ("BENCH_RESULT {json}") for scripts/bench_report.py.
--
-- A scenario script starts with:
--   local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local common = {}

local threads = {}
local next_id = 0

-- Runs in the main Lua state once per thread, before it starts: numbers the threads.
function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- Counts answers whose status is not `expected`, and remembers the first Content-Type, so
-- scenarios that expect a particular status (a 401, or a 200 and not a redirect) can be checked.
-- Only the scenarios that need it install it: wrk parses headers and bodies only when a
-- `response` function exists, which would slow the fastest scenarios down.
function common.expect_status(expected)
   unexpected = 0
   content_type = ""
   response = function(status, headers, body)
      if status ~= expected then
         unexpected = unexpected + 1
      end
      if content_type == "" then
         content_type = headers["Content-Type"] or headers["content-type"] or "none"
      end
   end
end

-- Percent-encodes a form value.
function common.encode(value)
   return (string.gsub(value, "[^%w%-%._~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

-- Parses "key=value" script arguments (those after `--`) into a table; wrk puts the URL in
-- `args[0]`, which matches no key.
function common.parse_args(args)
   local options = {}
   for _, arg in pairs(args) do
      local key, value = string.match(arg, "^([%w_]+)=(.*)$")
      if key then
         options[key] = value
      end
   end
   return options
end

local function json_string(value)
   return '"' .. string.gsub(tostring(value), '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end) .. '"'
end

function done(summary, latency, requests)
   local unexpected, content_type, checked = 0, "", false
   for _, thread in ipairs(threads) do
      local count = thread:get("unexpected")
      if count ~= nil then
         checked = true
         unexpected = unexpected + count
      end
      local seen = thread:get("content_type")
      if content_type == "" and seen ~= nil then
         content_type = seen
      end
   end
   local e = summary.errors
   local fields = {
      '"requests": ' .. summary.requests,
      '"duration_us": ' .. summary.duration,
      '"bytes": ' .. summary.bytes,
      '"status_4xx_5xx": ' .. e.status,
      '"connect_errors": ' .. e.connect,
      '"read_errors": ' .. e.read,
      '"write_errors": ' .. e.write,
      '"timeouts": ' .. e.timeout,
      '"latency_mean_us": ' .. string.format("%.1f", latency.mean),
      '"latency_max_us": ' .. latency.max,
      '"p50_us": ' .. latency:percentile(50),
      '"p90_us": ' .. latency:percentile(90),
      '"p99_us": ' .. latency:percentile(99),
      '"status_checked": ' .. tostring(checked),
      '"unexpected_status": ' .. unexpected,
      '"content_type": ' .. json_string(content_type),
   }
   io.write("BENCH_RESULT {" .. table.concat(fields, ", ") .. "}\n")
end

return common
