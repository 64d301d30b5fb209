-- GET / as a JSON client: the cheapest route, the baseline for everything else.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

wrk.method = "GET"
wrk.path = "/"
wrk.headers["Accept"] = "application/json"
