-- wrk script for bench/run_idsync.py: every call syncs a new partner user ID (so every
-- call is a durable write); every other call comes from a returning browser that sends
-- its platform-UUID cookie, the others from new browsers that get one.
local n = 0
local run = tostring(os.time())

function request()
  n = n + 1
  local path = "/ibs:dpid=21&dpuuid=bench%2F" .. run .. "-" .. n
  if n % 2 == 0 then
    return wrk.format("GET", path, { Cookie = string.format("demdex=%038d", n) })
  end
  return wrk.format("GET", path)
end
