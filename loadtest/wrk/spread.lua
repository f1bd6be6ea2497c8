-- wrk: redirects of random codes, each "from" a random client network, as a trusted
-- proxy would forward them (X-Forwarded-For), with a browser's user agent: the worst
-- case for the worker's location cache (almost every click a network it has not seen)
-- and for the visitor sets (almost every click a new visitor).
--
--   wrk -t2 -c64 -d20s -s loadtest/wrk/spread.lua http://127.0.0.1:18080 -- paths.txt
local paths = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  math.randomseed(os.time() * 1000 + (id or 0))
end

local ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

function request()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." ..
    math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", paths[math.random(#paths)],
    { ["X-Forwarded-For"] = ip, ["User-Agent"] = ua })
end
