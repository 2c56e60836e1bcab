-- wrk script for the recommender benchmark: every request asks for a different known user,
-- cycling over u0 .. u(USERS-1) with a stride co-prime with USERS, so consecutive requests hit
-- users spread over the whole id range. Each wrk thread starts at its own offset.
--
--   wrk -t2 -c32 -d15s --latency -s users.lua http://127.0.0.1:PORT -- USERS N
--
-- Arguments after `--`: the user count (default 50000) and n (default 10). No response()
-- callback (it would make wrk parse every body); wrk itself counts non-2xx answers.

local users = 50000
local n = 10
local stride = 7919
local counter = 0
local thread_count = 0

function setup(thread)
   thread:set("offset", thread_count * 10007)
   thread_count = thread_count + 1
end

function init(args)
   users = tonumber(args[1]) or users
   n = tonumber(args[2]) or n
   counter = tonumber(offset) or 0
end

function request()
   local user = (counter * stride) % users
   counter = counter + 1
   return wrk.format("GET", "/v1/users/u" .. user .. "/recommendations?n=" .. n)
end

