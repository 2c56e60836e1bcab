-- wrk script for bench/dashboards/plot.sh: cycles over the request paths in a file, one a line
-- (GET /classify with real transactions, or a user's recommendations), each thread from its own
-- offset.
--
--   wrk -t1 -c2 -d60s -s rows.lua http://127.0.0.1:PORT -- PATHS_FILE

local paths = {}
local counter = 0
local thread_count = 0

function setup(thread)
   thread:set("offset", thread_count * 7919)
   thread_count = thread_count + 1
end

function init(args)
   for line in io.lines(args[1]) do
      paths[#paths + 1] = line
   end
   counter = tonumber(offset) or 0
end

function request()
   counter = counter + 1
   return wrk.format("GET", paths[(counter % #paths) + 1])
end
