# Rate limit tiers from reputation.
#
# The request rate an agent may use depends on data.agents[<id>].reputation_score:
# a score of 5000 or more gives 1000 requests, 1000 or more gives 500, anything else
# (including an unknown agent or a score that is not a number) gives 100.
#
# Input: {"caller": "spiffe://<trust domain>/agent/<id>", ...}
# Entrypoints: tachikoma/rate_limit/limit (number), tachikoma/rate_limit/tier (string).
package tachikoma.rate_limit

agent_prefix := concat("", ["spiffe://", data.rate_limit.trust_domain, "/agent/"])

agent_id := id if {
	is_string(input.caller)
	startswith(input.caller, agent_prefix)
	id := substring(input.caller, count(agent_prefix), -1)
	id != ""
	not contains(id, "/")
}

# Only a number counts: in Rego every string sorts after every number, so "9999" >= 5000.
score := s if {
	s := data.agents[agent_id].reputation_score
	is_number(s)
}

default limit := 100

limit := 1000 if {
	score >= 5000
} else := 500 if {
	score >= 1000
}

default tier := "standard"

tier := "trusted" if {
	score >= 5000
} else := "established" if {
	score >= 1000
}
