# Service-to-service access by SPIFFE ID.
#
# A caller may call a target only along an edge of the allowed service graph in
# data.service_graph.edges; everything else is denied. Services are identified by our naming
# scheme, spiffe://<trust domain>/service/<name>, in the trust domain of
# data.service_graph.trust_domain.
#
# Input: {"caller": "<SPIFFE ID>", "target": "<SPIFFE ID>", ...}
# Entrypoints: tachikoma/service_graph/allow (boolean),
#              tachikoma/service_graph/decision ({"allow": bool, "reason": string}).
package tachikoma.service_graph

service_prefix := concat("", ["spiffe://", data.service_graph.trust_domain, "/service/"])

# The service name of a SPIFFE ID of our trust domain (one path segment after /service/),
# undefined for anything else. (String built-ins rather than regex.match: OPA's wasm runtime
# compiles a pattern on every call, about 0.2 ms.)
service_name(id) := name if {
	is_string(id)
	startswith(id, service_prefix)
	name := substring(id, count(service_prefix), -1)
	name != ""
	not contains(name, "/")
}

caller := service_name(input.caller)

target := service_name(input.target)

default allow := false

allow if target in data.service_graph.edges[caller]

reason := "the caller is not a service of this trust domain" if not caller

reason := "the target is not a service of this trust domain" if {
	caller
	not target
}

reason := sprintf("%s may not call %s", [caller, target]) if {
	not allow
	caller
	target
}

decision := {"allow": true} if allow

decision := {"allow": false, "reason": reason} if not allow
