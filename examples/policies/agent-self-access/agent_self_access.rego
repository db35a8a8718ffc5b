# Agent self-access.
#
# An agent may GET and PUT its own record, agents/<its id>, and nothing else: the caller's
# SPIFFE ID must be spiffe://<trust domain>/agent/<id> for that same <id>. The caller is the
# authenticated subject (the mTLS peer, or the subject of a validated JWT-SVID).
#
# Input: {"caller": "<SPIFFE ID>", "method": "GET", "path": ["agents", "<id>"], ...}
# Entrypoints: tachikoma/agent_self_access/allow (boolean),
#              tachikoma/agent_self_access/decision ({"allow": bool, "reason": string}).
package tachikoma.agent_self_access

agent_prefix := concat("", ["spiffe://", data.agent_self_access.trust_domain, "/agent/"])

# The agent id of the caller, when the caller is an agent of our trust domain. The id must be a
# single path segment (no "/", not "." or ".."), so that "agents/<id>" names exactly one record.
caller_agent := id if {
	is_string(input.caller)
	startswith(input.caller, agent_prefix)
	id := substring(input.caller, count(agent_prefix), -1)
	id != ""
	not contains(id, "/")
	not id in {".", ".."}
}

allowed_methods := {"GET", "PUT"}

default allow := false

allow if {
	input.method in allowed_methods
	input.path == ["agents", caller_agent]
}

reason := "the caller is not an agent of this trust domain" if not caller_agent

reason := "agents may only GET or PUT their own record" if {
	caller_agent
	not input.method in allowed_methods
}

reason := "an agent may only access its own record, agents/<its id>" if {
	caller_agent
	input.method in allowed_methods
	not allow
}

decision := {"allow": true} if allow

decision := {"allow": false, "reason": reason} if not allow
