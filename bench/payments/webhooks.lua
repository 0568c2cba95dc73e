-- wrk: POST each pre-signed webhook of $BODIES once (cycling if the run outlasts them).
local bodies = {}
local i = 0
function init(args)
  for line in io.lines(os.getenv("BODIES")) do
    local sig, body = line:match("^(%x+) (.*)$")
    bodies[#bodies + 1] = wrk.format("POST", "/webhooks/paystack",
      {["content-type"] = "application/json", ["x-paystack-signature"] = sig}, body)
  end
end
function request()
  i = i % #bodies + 1
  return bodies[i]
end
