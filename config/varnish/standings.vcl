# Standings in front of Varnish: cache the gateway's static JSON, pass the
# API through, and let the gateway purge what changed.
#
# What this file does:
#   /static/*   cached for as long as the gateway's Cache-Control says
#               (public, max-age=60), keyed by path alone, query strings
#               dropped, so every client shares one object per file;
#               Cookie and Authorization are not sent on, so only boards
#               whose reads need no key (public, public_reads) have static
#               JSON through Varnish: others get the gateway's 401, uncached;
#   /metrics, /v1/admin/...
#               operators' paths: passed only for clients in the `operators`
#               ACL; anyone else gets a 403 from Varnish itself, with a
#               one-line text body, and the gateway never sees the request;
#   everything  else (the /v1 API, /healthz, /readyz) passed to the gateway
#               uncached, Authorization and all (the gateway checks API
#               keys; Varnish does not);
#   PURGE       accepted only from the `purgers` ACL (403 otherwise) and
#               removes the object at that path;
#   X-Cache     HIT, MISS or PASS on every response, so people and tests can
#               see what happened.
#
# The backend (the gateway's address) and the `purgers` and `operators`
# ACLs live in `standings-site.vcl`, found on varnishd's vcl_path, so a
# deployment (or a test) points Varnish at its gateway by writing that one
# small file and putting its folder first:
#
#   varnishd -F -a 127.0.0.1:6081 -f /path/to/config/varnish/standings.vcl \
#       -p vcl_path=/etc/standings/varnish:/path/to/config/varnish
#
# See docs/cdn-and-loadtests.md.

vcl 4.1;

include "standings-site.vcl";

sub vcl_recv {
    # Only this file may mark a refusal for vcl_synth below.
    unset req.http.X-Standings-Refused;
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "PURGE is not allowed from this address"));
        }
        # The gateway purges paths; drop a query string so a PURGE names
        # the same object a GET cached.
        set req.url = regsub(req.url, "\?.*$", "");
        return (purge);
    }
    # Operators' paths: metrics (per-route and store detail nobody outside
    # needs) and the admin API (which also checks keys once tenants exist).
    # The pattern is wider than the gateway's routes on purpose: any number
    # of leading slashes (the gateway ignores them), an absolute-form URL,
    # any case, anything after the prefix; what it catches that the gateway
    # would answer 404 to costs nothing.
    if (req.url ~ "(?i)^([a-z][a-z0-9+.-]*://[^/]*)?/+(metrics|v1/+admin)" &&
        client.ip !~ operators) {
        set req.http.X-Standings-Refused = "operators";
        return (synth(403, "Forbidden"));
    }
    if (req.url ~ "^/static/" && (req.method == "GET" || req.method == "HEAD")) {
        # One object per file: a query string cannot split the cache (or
        # bust it on purpose), and nothing per-user reaches the gateway.
        set req.url = regsub(req.url, "\?.*$", "");
        unset req.http.Cookie;
        unset req.http.Authorization;
        return (hash);
    }
    return (pass);
}

sub vcl_synth {
    # The operators' refusal: one line of text instead of Varnish's HTML
    # error page (other synths keep the built-in page).
    if (req.http.X-Standings-Refused) {
        set resp.http.Content-Type = "text/plain; charset=utf-8";
        set resp.body = {"/metrics and /v1/admin/ are for operators only
"};
        return (deliver);
    }
}

sub vcl_hash {
    # The path alone: the gateway purges from its own address, whatever
    # Host the readers used, and must hit the same object.
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_response {
    if (bereq.url ~ "^/static/") {
        if (beresp.status != 200) {
            # An unknown board's 404 or a 5xx is not worth keeping: fetch
            # again next time (the gateway sends no Cache-Control on those).
            set beresp.ttl = 1s;
            set beresp.uncacheable = true;
            return (deliver);
        }
        # beresp.ttl already comes from the gateway's Cache-Control
        # (max-age=60). A short grace serves the old file for a moment
        # while a fresh one is fetched after the TTL runs out; a PURGE
        # removes the object and its grace at once.
        set beresp.grace = 10s;
    }
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } else if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    # Purge keys are for the cache, not for readers.
    unset resp.http.xkey;
    unset resp.http.surrogate-key;
}
